"""LiteRT's CompiledModel as an engine of :class:`.model.Model`: NPU / GPU / CPU accelerators.

LiteRT 2.x reaches vendor NPUs (Qualcomm, MediaTek, Google Tensor, Intel OpenVINO, Samsung
plugins) and GPUs through ``ai_edge_litert.compiled_model.CompiledModel``; the ``Interpreter``
+ ``load_delegate`` path stays for Edge TPU, Arm NN, NXP VX and FPGA delegates.
``[model] accelerator = ["npu", "gpu", "cpu"]`` tries each in order, falling back like the
delegate chain does (each failure recorded and logged in one line); the one that compiled is
:attr:`CompiledEngine.accelerator`, with ``is_fully_accelerated()`` beside it (False: some ops
run on the CPU).

I/O: :meth:`input_view` is a numpy array the engine owns (preprocessing writes into it), copied
into the model's input ``TensorBuffer`` at :meth:`invoke` — one copy, as the Interpreter path
makes into its input tensor. Zero-copy is not possible through the Python API of LiteRT 2.3.0:
a ``TensorBuffer.create_from_host_memory`` buffer is one-dimensional and the compiled model
refuses to register it as an input ("Failed to register input tensor buffer"). Outputs are
read out (a copy per invoke, like the Interpreter's ``get_tensor``) so a result can outlive
the next invoke.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendError, ModelError
from .native import quiet_native_stderr
from .tensors import TensorSpec

log = logging.getLogger("edge_agent.inference")

ACCELERATORS = ("npu", "gpu", "cpu")
NO_REASON = "the runtime gave no reason"


def compiled_model_module() -> Any:
    """``ai_edge_litert.compiled_model``, or :class:`BackendError` saying what to install."""
    try:
        with quiet_native_stderr(only_runtime=True):
            from ai_edge_litert import compiled_model
    except ImportError as exc:
        raise BackendError(
            f"[model] accelerator needs LiteRT's CompiledModel (ai-edge-litert >= 2.0): {exc}; "
            "pip install -U ai-edge-litert, or leave model.accelerator empty (Interpreter)"
        ) from None
    return compiled_model


def _first_line(text: str) -> str:
    """The runtime's message without its source locations (``ERROR: [file.cc:123]``)."""
    lines = [re.sub(r"^(ERROR|WARNING): \[[^\]]*\]\s*", "", ln.strip(" └")) for ln in
             text.splitlines()]
    useful = [ln for ln in lines if ln]
    return (useful or [NO_REASON])[0][:200]


_HINTS = {  # what the runtime logs when an accelerator is not there, per accelerator
    "npu": (r"NPU accelerator could not be loaded[^.]*", r"No compiler plugin found",
            r"Could not load shared library \S+?/([^/\s]+\.so): [^:]+: cannot open shared object"),
    "gpu": (r"Failed to initialize WebGPU environment: INTERNAL: No adapters found",
            r"No adapters found", r"vkCreateInstance failed[^\n]*"),
}


def _native_hint(accelerator: str, text: str) -> str:
    """The runtime's own line saying why ``accelerator`` is missing (its log is captured while
    compiling), e.g. ``NPU accelerator could not be loaded and registered``."""
    for pattern in _HINTS.get(accelerator, ()):
        m = re.search(pattern, text)
        if m:
            return " ".join(m.group(0).replace("└", " ").split())[:160]
    return ""


class CompiledEngine:
    """One CompiledModel of ``path`` on the first accelerator of ``accelerators`` that compiles;
    inputs and outputs in the order (and with the specs) of ``inputs`` / ``outputs``."""

    def __init__(
        self,
        path: Path,
        accelerators: Sequence[str],
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        *,
        threads: int = 1,
    ) -> None:
        bad = [a for a in accelerators if a not in ACCELERATORS]
        if bad or not accelerators:
            raise ModelError(
                f"model.accelerator {list(accelerators)}: each must be one of "
                + ", ".join(ACCELERATORS)
            )
        cm = compiled_model_module()
        self.path = path
        self.errors: list[str] = []
        self.accelerator = ""
        self._model: Any = None
        for pos, name in enumerate(accelerators):
            try:
                with quiet_native_stderr(relay=False) as native:
                    options = cm.Options(
                        hardware_accelerators=getattr(cm.HardwareAccelerator, name.upper()),
                        cpu_options=cm.CpuOptions(num_threads=threads),
                    )
                    model = cm.CompiledModel.from_file(str(path), options=options)
            except Exception as exc:  # the runtime raises RuntimeError with native text
                why = _first_line(str(exc))
                hint = _native_hint(name, native.text())
                if hint:
                    why = hint if why == NO_REASON else f"{why} ({hint})"
                self.errors.append(f"{name}: {why}")
                rest = accelerators[pos + 1 :]
                log.warning("accelerator %s unavailable for %s (%s); falling back to %s",
                            name, path.name, why, rest[0] if rest else "nothing")
                continue
            self._model, self.accelerator = model, name
            break
        if self._model is None:
            raise ModelError(
                f"{path}: no accelerator of {list(accelerators)} could compile the model: "
                + "; ".join(self.errors)
            )
        self.fully_accelerated = bool(self._model.is_fully_accelerated())
        log.info("model %s compiled for %s (fully accelerated: %s)", path.name,
                 self.accelerator, self.fully_accelerated)
        sig = self._model.get_signature_list()
        key = next(iter(sig))
        in_details = self._model.get_input_tensor_details(key)
        out_details = self._model.get_output_tensor_details(key)
        in_pos = {d["name"]: i for i, d in enumerate(in_details.values())}
        out_pos = {d["name"]: i for i, d in enumerate(out_details.values())}
        missing = [t.name for t in (*inputs, *outputs) if t.name not in in_pos | out_pos]
        if missing:
            raise ModelError(f"{path}: tensors {missing} are not in the model's signature {key!r}")
        # our arrays, in the signature's order (run_by_index wants that order)
        self._in_arrays: list[np.ndarray] = [np.zeros(0)] * len(in_pos)
        for t in inputs:
            self._in_arrays[in_pos[t.name]] = np.zeros(tuple(t.shape), dtype=t.dtype)
        self._in_order = [in_pos[t.name] for t in inputs]  # spec order -> signature position
        self._in_bufs = self._model.create_input_buffers(0)
        self._out_bufs = self._model.create_output_buffers(0)
        self._out_specs: list[tuple[int, int, np.dtype[Any], tuple[int, ...]]] = [
            (out_pos[t.name], int(np.prod(t.shape)), np.dtype(t.dtype), tuple(t.shape))
            for t in outputs
        ]

    def input_view(self, i: int) -> np.ndarray:
        return self._in_arrays[self._in_order[i]]

    def invoke(self) -> None:
        for arr, buf in zip(self._in_arrays, self._in_bufs, strict=True):
            buf.write(arr)
        self._model.run_by_index(0, self._in_bufs, self._out_bufs)

    def output(self, i: int) -> np.ndarray:
        pos, n, dtype, shape = self._out_specs[i]
        out: np.ndarray = self._out_bufs[pos].read(n, dtype).reshape(shape)
        return out

    def outputs_all(self) -> list[np.ndarray]:
        return [self.output(i) for i in range(len(self._out_specs))]

    def summary(self) -> dict[str, Any]:
        return {
            "engine": "compiled_model",
            "accelerator": self.accelerator,
            "fully_accelerated": self.fully_accelerated,
            "accelerator_errors": list(self.errors),
        }


def engine_info(model: Any) -> dict[str, Any]:
    """``{"accelerator", "fully_accelerated"}`` of a Model running on CompiledModel, else
    ``{"accelerator": None}`` (the Interpreter): what status and metrics show."""
    engine = getattr(model, "engine", None)
    if isinstance(engine, CompiledEngine):
        return {"accelerator": engine.accelerator, "fully_accelerated": engine.fully_accelerated}
    return {"accelerator": None}
