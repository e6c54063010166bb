"""``edge-agent camera snapshot``: one frame as JPEG, optionally with the model's detections.

When the agent runs it owns the camera (a V4L2 device opens once), so the frame comes from the
agent through the control socket (its latest processed frame). Otherwise the camera is opened
here, one frame is read, and (with ``annotate``) the boot model runs on it.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..common.atomicfile import atomic_write_bytes
from ..config import Config
from ..errors import AgentNotRunning, ConfigError, FrameError, SourceError
from ..inference.annotate import annotate, encode_jpeg
from ..ops.control import request

FRAME_TRIES = 16


def grab_frame(cfg: Config) -> np.ndarray:
    """Open ``camera.source``, read one usable frame, release the camera."""
    from ..camera import open_source
    from ..inference.native import NativeLog, quiet_native_stderr
    from ..ops.stderr_relay import native_why

    source = open_source(cfg.camera)
    native = NativeLog()
    try:
        # every line printed meanwhile is native (FFmpeg, OpenCV): debug log, and the reason
        with quiet_native_stderr(relay=False, only_runtime=True) as native:
            source.open()
            try:
                for _ in range(FRAME_TRIES):
                    try:
                        frame = source.read()
                    except FrameError:
                        continue
                    if frame is None:
                        break
                    return frame
            finally:
                source.close()
    except SourceError as exc:
        why = native_why(native.lines)
        raise SourceError(f"{exc} ({why})" if why else str(exc)) from None
    raise SourceError(f"camera.source {cfg.camera.source!r}: no frame could be read")


def detect(cfg: Config, frame: np.ndarray) -> Any:
    """Run the model the agent would boot with on ``frame`` (read-only: no trial attempt)."""
    from ..inference import Model, Runner, load_description
    from .probes import boot_model

    path = boot_model(cfg)[0]
    model = Model(
        path,
        threads=cfg.model.threads,
        delegates=[(d.library, d.options) for d in cfg.model.delegates],
        accelerators=cfg.model.accelerator,
        backend=cfg.model.backend,
    )
    result, _times = Runner(model, load_description(path)).run(frame)
    return result


def output_path(out: Path) -> Path:
    """``out``, or for a folder a new ``snapshot-YYYYmmdd-HHMMSS.jpg`` in it; a place that
    cannot be written is a ConfigError (the command line names it) before any frame is taken."""
    if out.is_dir():
        out = out / time.strftime("snapshot-%Y%m%d-%H%M%S.jpg")
    parent = out.parent
    if not parent.is_dir():
        raise ConfigError(f"{out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{out}: folder {parent} is not writable by this user")
    return out


def take(cfg: Config, out: Path, *, annotated: bool = False) -> dict[str, Any]:
    """Write one frame to ``out`` (atomically; a folder: a new file in it); returns where it
    came from, its size and ``path``."""
    out = output_path(out)
    try:
        reply = request(cfg.control_socket, "snapshot", annotate=annotated)
    except AgentNotRunning:
        frame = grab_frame(cfg)
        result = detect(cfg, frame) if annotated else None
        image = annotate(frame, result) if annotated else frame
        data = encode_jpeg(image)
        h, w = image.shape[:2]
        info = {"from": "camera", "width": w, "height": h}
        if result is not None:
            info["result"] = result.to_json()
    else:
        data = base64.b64decode(reply["jpeg_b64"])
        info = {k: reply.get(k) for k in ("width", "height", "seq", "result")}
        info["from"] = "running agent"
    try:
        atomic_write_bytes(out, data, mode=0o644)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write the JPEG ({exc.strerror})") from None
    info["path"] = str(out)
    return info
