"""Where the files shipped with edge-agent (models, demo media) are found at run time."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import ModelError

FACTORY_MODEL = "blazeface_int8.tflite"


def models_dir() -> Path:
    """The shipped ``models/`` folder.

    Looked for in order: ``$EDGE_AGENT_MODELS_DIR``; the source tree next to the package
    (editable install, checkout); ``<prefix>/share/edge-agent/models`` (wheel install).
    """
    candidates = []
    env = os.environ.get("EDGE_AGENT_MODELS_DIR")
    if env:
        candidates.append(Path(env))
    candidates.append(Path(__file__).resolve().parent.parent / "models")
    candidates.append(Path(sys.prefix) / "share" / "edge-agent" / "models")
    for c in candidates:
        if c.is_dir() and any(c.glob("*.tflite")):
            return c
    raise ModelError(
        "shipped models not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); reinstall edge-agent or set EDGE_AGENT_MODELS_DIR"
    )


def shipped_model(name: str = FACTORY_MODEL) -> Path:
    path = models_dir() / name
    if not path.is_file():
        raise ModelError(f"{path}: shipped model missing; reinstall edge-agent")
    return path


DEMO_CLIP = "demo_astronaut.mp4"


def demo_clip() -> Path:
    """The shipped demo video (``camera.source = "demo"``): a pan over a face, 640x480."""
    path = models_dir() / DEMO_CLIP
    if not path.is_file():
        raise ModelError(f"{path}: shipped demo clip missing; reinstall edge-agent")
    return path
