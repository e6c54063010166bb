"""The technician's and developer's tools: doctor and its probes, the support bundle,
camera snapshot, the pipeline bench."""
