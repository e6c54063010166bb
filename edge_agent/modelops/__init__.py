"""Model operations before a model ships: quantise (``models quantize``), compare two models
on the same frames (``models compare``) and report it (JSON, HTML, the release manifest).

The agreement maths is :mod:`edge_agent.inference.agreement` (pure, shared with the device);
this package holds the parts with I/O: graph surgery, calibration, timing, ground truth.
ai-edge-quantizer and pycocotools are imported only when used (the ``modelops`` extra).
"""
