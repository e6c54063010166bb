"""Where the files shipped with edge-agent (models, demo media) are found at run time.

One lookup, in this order (``models_dir``):

1. ``$EDGE_AGENT_MODELS_DIR``, an operator's override;
2. the package's own data, ``importlib.resources.files("edge_agent") / "shipped"``: a wheel
   carries the shipped files inside the package (setup.py's build hook copies them from
   ``models/``), so they are found wherever pip put the package: a venv, ``--user``, a system
   or ``--prefix`` install, ``--target DIR``, a container image;
3. the checkout's ``models/`` next to the package (run from a source tree, editable install).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import ModelError

FACTORY_MODEL = "blazeface_int8.tflite"
DEMO_CLIP = "demo_astronaut.mp4"
PACKAGE_DATA = "shipped"  # edge_agent/shipped/ in a wheel


def candidates() -> list[Path]:
    """The folders ``models_dir`` looks in, in order."""
    out = []
    env = os.environ.get("EDGE_AGENT_MODELS_DIR")
    if env:
        out.append(Path(env))
    package = resources.files(__package__ or "edge_agent")
    # a package on the file system (every pip layout) gives a real path; a zipped one does not
    # (LiteRT and FFmpeg need real files), so it is not a candidate
    if isinstance(package, Path):
        out.append(package / PACKAGE_DATA)
        out.append(package.parent / "models")
    return out


def models_dir() -> Path:
    """The folder holding the shipped models, their description JSONs and the demo clip."""
    looked = candidates()
    for c in looked:
        if c.is_dir() and any(c.glob("*.tflite")):
            return c
    raise ModelError(
        "shipped models not found (looked in "
        + ", ".join(str(c) for c in looked)
        + "); reinstall edge-agent or set EDGE_AGENT_MODELS_DIR"
    )


def shipped_model(name: str = FACTORY_MODEL) -> Path:
    path = models_dir() / name
    if not path.is_file():
        raise ModelError(f"{path}: shipped model missing; reinstall edge-agent")
    return path


def demo_clip() -> Path:
    """The shipped demo video (``camera.source = "demo"``): a pan over a face, 640x480."""
    path = models_dir() / DEMO_CLIP
    if not path.is_file():
        raise ModelError(f"{path}: shipped demo clip missing; reinstall edge-agent")
    return path
