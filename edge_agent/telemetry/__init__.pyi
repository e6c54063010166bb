"""Type stub of the lazily loaded package (see ``__init__.py``): what it exports."""

from .histogram import Histogram
from .latency import STAGES, StageLatencies, summarize
from .resources import ResourceSampler
from .snapshot import SCHEMA, build_snapshot, final_summary, summary_line

__all__ = [
    "SCHEMA",
    "STAGES",
    "Histogram",
    "ResourceSampler",
    "StageLatencies",
    "build_snapshot",
    "final_summary",
    "summarize",
    "summary_line",
]
