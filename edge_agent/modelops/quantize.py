"""``models quantize``: a float .tflite -> a quantised one, calibrated on frames from any source.

Order: load the float model and its description -> graph surgery (:mod:`.graph`, each step
reported) -> operators the chosen mode cannot quantise are refused by name -> calibration on
frames through the agent's own :class:`~edge_agent.inference.Preprocessor` (so it sees what the
model will see at run time) -> the input range pinned to the description's exact range, the
decoder's decision ranges pinned on its outputs -> ai-edge-quantizer -> the chosen I/O types ->
no float op left (full-integer modes) -> the result loads in the runtime -> model, description
JSON beside it, report.

ai-edge-quantizer runs on LiteRT alone (no TensorFlow); it is imported only here.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..common.atomicfile import atomic_write_bytes, write_json_atomic
from ..common.extras import pip_hint
from ..errors import ModelError, QuantizeError, UnquantizableOpError
from ..inference.description import ModelDescription, description_path, normalize_lut
from ..inference.native import quiet_native_stderr
from . import graph
from .frames import FrameFeed

MODES = ("int8", "int8-float-io", "dynamic", "fp16", "int16x8")
CALIBRATED = ("int8", "int8-float-io", "int16x8")
DEFAULT_FRAMES = 100
PIP_HINT = pip_hint("modelops") + " (ai-edge-quantizer; no TensorFlow needed)"

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class QuantizeOptions:
    mode: str = "int8"
    frames: int = DEFAULT_FRAMES
    input_type: str | None = None  # int8 | uint8 (int8 mode); float for the float-io modes
    output_type: str | None = None  # int8 | float (int8 mode)
    threads: int = 1

    def io_types(self) -> tuple[str, str]:
        if self.mode == "int8":
            inp, out = self.input_type or "int8", self.output_type or "int8"
            if inp not in ("int8", "uint8") or out not in ("int8", "float"):
                raise QuantizeError(
                    f"--mode int8 takes --input-type int8|uint8 and --output-type int8|float, "
                    f"got {inp}/{out} (--mode int8-float-io keeps a float interface)"
                )
            return inp, "float32" if out == "float" else out
        if self.input_type or self.output_type:
            raise QuantizeError(
                f"--input-type/--output-type apply to --mode int8 only; --mode {self.mode} "
                "keeps a float interface"
            )
        return "float32", "float32"


@dataclass
class QuantizeResult:
    out: Path
    mode: str
    steps: list[graph.Step]
    frames: int
    skipped: list[str]
    pinned: dict[str, tuple[float, float]]
    float_size: int
    size: int
    seconds: dict[str, float]
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    quantizer: str = ""
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "mode": self.mode,
            "quantizer": self.quantizer,
            "source": self.source,
            "calibration_frames": self.frames,
            "skipped_frames": self.skipped[:20],
            "steps": [s.to_json() for s in self.steps],
            "pinned_ranges": {k: list(v) for k, v in self.pinned.items()},
            "float_size": self.float_size,
            "size": self.size,
            "size_ratio": round(self.float_size / self.size, 3) if self.size else None,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "inputs": self.inputs,
            "outputs": self.outputs,
        }


def _quantizer() -> tuple[Any, Any, str]:
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError as exc:
        raise QuantizeError(f"ai-edge-quantizer is not installed ({exc}); {PIP_HINT}") from None
    from importlib.metadata import PackageNotFoundError, version

    try:
        label = f"ai-edge-quantizer {version('ai-edge-quantizer')}"
    except PackageNotFoundError:  # pragma: no cover - installed without metadata
        label = "ai-edge-quantizer"
    return quantizer, recipe, label


def _make_quantizer(prepared: bytes, mode: str) -> Any:
    quantizer, recipe, _ = _quantizer()
    buffer = bytearray(prepared)
    if mode in ("int8", "int8-float-io"):
        return quantizer.Quantizer(buffer, recipe.static_wi8_ai8())
    if mode == "int16x8":
        return quantizer.Quantizer(buffer, recipe.static_wi8_ai16())
    if mode == "dynamic":
        return quantizer.Quantizer(buffer, recipe.dynamic_wi8_afp32())
    from ai_edge_quantizer import algorithm_manager, qtyping

    q = quantizer.Quantizer(buffer)
    q.add_weight_only_config(
        regex=".*",
        operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
        num_bits=16,
        algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING,
    )
    return q


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The quantizer's tqdm bars, warnings and the runtime's fd-2 lines stay off the terminal
    (the CLI draws its own progress bar)."""
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)  # it logs "Serializing model..." on the root logger
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stderr(io.StringIO()), quiet_native_stderr(relay=False):
                yield
    finally:
        logging.disable(previous)


def _fallback_hint(mode: str) -> str:
    hint = "try --mode dynamic (float activations, int8 weights: such ops stay float)"
    if mode != "int16x8":
        hint += " or --mode int16x8 (if the op has a 16-bit kernel)"
    return hint


def _check_known_ops(prepared: bytes, mode: str) -> None:
    """Ops the quantizer has no rule for at all (refused before calibrating)."""
    if mode not in CALIBRATED:
        return
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils

    known = tfl_flatbuffer_utils.TFL_OP_CODE_TO_NAME
    model = graph.read(prepared)
    bad = []
    for n, op in enumerate(model.subgraphs[0].operators):
        code = graph.op_code(model, op)
        if code not in known:
            bad.append(f"{graph.op_name(code)} (op #{n})")
    if bad:
        raise UnquantizableOpError(
            f"operator {', '.join(bad)} cannot be quantised to {mode} by ai-edge-quantizer; "
            + _fallback_hint(mode)
        )


def _check_no_float_ops(data: bytes, mode: str) -> None:
    left = graph.float_ops(data)
    if left:
        names = ", ".join(f"{name} (op #{n})" for n, name in left[:8])
        raise UnquantizableOpError(
            f"operator {names} cannot be quantised to {mode} by ai-edge-quantizer (it stayed "
            f"in float); {_fallback_hint(mode)}"
        )


def _input_range(description: ModelDescription, channels: int) -> tuple[float, float]:
    lut = normalize_lut(description, channels)
    return float(lut.min()), float(lut.max())


def _max_output_difference(a: bytes, b: bytes, x: np.ndarray) -> tuple[float, float]:
    """Largest |a - b| over the outputs for input ``x``, and the largest |a|."""
    from ..inference.backend import select_backend

    interpreter = select_backend("auto").Interpreter
    outs = []
    for data in (a, b):
        with quiet_native_stderr(relay=False):
            it = interpreter(model_content=data, num_threads=1)
            it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        outs.append([it.get_tensor(d["index"]).astype(np.float64)
                     for d in it.get_output_details()])
    diff = max(float(np.max(np.abs(p - q))) for p, q in zip(*outs, strict=True))
    return diff, max(float(np.max(np.abs(p))) for p in outs[0])


def quantize_model(
    float_path: Path,
    out: Path,
    source: str | None,
    options: QuantizeOptions,
    *,
    description: ModelDescription | None = None,
    progress: Progress | None = None,
) -> QuantizeResult:
    """Quantise ``float_path`` into ``out`` (+ ``out``'s description JSON); see the module."""
    from ..inference import Model, Preprocessor, get_decoder, load_description

    if options.mode not in MODES:
        raise QuantizeError(f"unknown mode {options.mode!r}; one of {', '.join(MODES)}")
    io_in, io_out = options.io_types()
    _, _, label = _quantizer()
    t_start = time.perf_counter()
    model = Model(float_path, threads=options.threads)
    desc = description or load_description(float_path, model=model)
    spec = model.inputs[0]
    if len(model.inputs) != 1 or spec.dtype != np.float32:
        raise QuantizeError(
            f"{float_path}: expects a float model with one float32 image input; its inputs are "
            + ", ".join(f"{t.name} {t.dtype.name} {list(t.shape)}" for t in model.inputs)
        )
    original = float_path.read_bytes()
    try:
        prepared, steps = graph.prepare(original)
    except ModelError as exc:
        raise QuantizeError(f"{float_path}: {exc}") from None
    _check_known_ops(prepared, options.mode)
    seconds = {"prepare": time.perf_counter() - t_start}

    quant = _make_quantizer(prepared, options.mode)
    qsvs: dict[str, Any] | None = None
    feed: FrameFeed | None = None
    pinned: dict[str, tuple[float, float]] = {}
    first: np.ndarray | None = None
    if options.mode in CALIBRATED:
        if not source:
            raise QuantizeError(f"--mode {options.mode} needs calibration frames (--calibrate)")
        with _quiet():
            sig_list = _signature(prepared)
        sig_key, input_name = sig_list
        pre = Preprocessor(spec, desc)
        feed = FrameFeed(source, options.frames)
        chunk = max(1, min(16, options.frames // 20))
        batch: list[dict[str, np.ndarray]] = []
        t0 = time.perf_counter()

        def flush() -> None:
            nonlocal qsvs
            if not batch:
                return
            try:
                with _quiet():
                    qsvs = quant.calibrate(
                        {sig_key: list(batch)},
                        previous_calibration_result=qsvs,
                        num_threads=options.threads,
                    )
            except Exception as exc:
                raise QuantizeError(f"{float_path}: calibration failed: {exc}") from None
            batch.clear()
            if progress is not None:
                progress(feed.read, options.frames)

        for img in feed:
            x = np.zeros(spec.shape, np.float32)
            pre.run(img, x)
            if first is None:
                first = x
            batch.append({input_name: x})
            if len(batch) >= chunk:
                flush()
        flush()
        seconds["calibrate"] = time.perf_counter() - t0
        assert qsvs is not None
        in_name = graph.tensor_name(graph.read(prepared).subgraphs[0],
                                    graph.read(prepared).subgraphs[0].inputs[0])
        pinned[in_name] = _input_range(desc, spec.shape[-1] if len(spec.shape) == 4 else 1)
        decoder = get_decoder(desc, model)
        for index, rng in decoder.output_ranges().items():
            for name in graph.range_chain(prepared, index):
                pinned[name] = rng
        for name, (lo, hi) in pinned.items():
            if name in qsvs:
                qsvs[name] = {"min": np.array([lo], np.float32), "max": np.array([hi], np.float32)}
    if first is not None and steps:
        diff, size = _max_output_difference(original, prepared, first)
        if diff > 1e-4 * max(1.0, size):
            raise QuantizeError(
                f"{float_path}: the graph surgery changed the float outputs (max difference "
                f"{diff:.3g}); steps: {', '.join(s.name for s in steps)}"
            )

    t0 = time.perf_counter()
    try:
        with _quiet():
            result = quant.quantize(qsvs, enable_progress_report=False)
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise QuantizeError(f"{float_path}: ai-edge-quantizer refused the model: {text}") from None
    data = bytes(result.quantized_model)
    data, io_steps = graph.set_io_types(data, io_in, io_out)
    steps.extend(io_steps)
    seconds["quantize"] = time.perf_counter() - t0
    if options.mode in CALIBRATED:
        _check_no_float_ops(data, options.mode)

    checked = _load_check(data, out)
    atomic_write_bytes(out, data)
    write_json_atomic(description_path(out), desc.to_json())
    seconds["total"] = time.perf_counter() - t_start
    return QuantizeResult(
        out=out,
        mode=options.mode,
        steps=steps,
        frames=feed.read if feed else 0,
        skipped=feed.skipped if feed else [],
        pinned=pinned,
        float_size=len(original),
        size=len(data),
        seconds=seconds,
        inputs=[t.to_json() for t in checked.inputs],
        outputs=[t.to_json() for t in checked.outputs],
        quantizer=label,
        source=source,
    )


def _signature(prepared: bytes) -> tuple[str, str]:
    from ..inference.backend import select_backend

    it = select_backend("auto").Interpreter(model_content=prepared)
    sigs = it.get_signature_list()
    key = next(iter(sigs))
    return key, sigs[key]["inputs"][0]


def _load_check(data: bytes, out: Path) -> Any:
    """The runtime loads the result (else nothing is written)."""
    from ..inference import Model

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".tflite") as f:
        f.write(data)
        f.flush()
        try:
            return Model(f.name)
        except ModelError as exc:
            raise QuantizeError(f"the quantised model does not load: {exc}") from None
