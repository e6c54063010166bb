"""Type stub of the lazily loaded package (see ``__init__.py``): what it exports."""

from .backoff import Backoff
from .frame import Frame, LatestFrameSlot, Policy
from .reader import CameraReader
from .sources import (
    FrameSource,
    ImageFolderSource,
    OpenCVSource,
    SyntheticSource,
    default_pace,
    open_source,
)
from .synthetic import synthetic_frame

__all__ = [
    "Backoff",
    "CameraReader",
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "LatestFrameSlot",
    "OpenCVSource",
    "Policy",
    "SyntheticSource",
    "default_pace",
    "open_source",
    "synthetic_frame",
]
