"""One TFLite interpreter on one model file: clear load errors, specs, delegates, zero-copy I/O.

A :class:`Model` is used by one thread at a time; give each worker thread its own
(:meth:`Model.clone`). ``invoke()`` releases the GIL, so other threads run meanwhile.

Fewer threads for a while (the pipeline's economy, :mod:`edge_agent.agent.economy`): a model on
the plain CPU interpreter with ``threads > 1`` can hold a second interpreter of the same file
with fewer threads (:meth:`Model.prepare_threads`, built on any thread) and invoke on it from
the next frame on (:meth:`Model.use_threads`, called by the thread that invokes, between two
frames: the inputs written before the call belong to the interpreter in use then).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import (
    ModelEmptyError,
    ModelError,
    ModelFormatError,
    ModelNotFoundError,
    ModelTruncatedError,
    UnsupportedOpError,
)
from .backend import Backend, select_backend
from .compiled import CompiledEngine
from .native import quiet_native_stderr
from .tensors import TensorSpec

log = logging.getLogger("edge_agent.inference")

TFLITE_IDENTIFIER = b"TFL3"
CPU = "cpu"


class DelegateLike(Protocol):
    """Anything with a delegate ``library`` and its ``options`` (e.g. config's DelegateConfig)."""

    @property
    def library(self) -> str: ...

    @property
    def options(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class Delegate:
    """A delegate to try: shared library path or soname, and its options."""

    library: str
    options: Mapping[str, str] = field(default_factory=dict)


_UNRESOLVED = (
    (re.compile(r"unresolved custom op:\s*([^\s.]+)"), "{0}"),
    (
        re.compile(r"Didn't find op for builtin opcode '([^']+)' version '(\d+)'"),
        "{0} (version {1})",
    ),
    (re.compile(r"Didn't find op for builtin opcode '([^']+)'"), "{0}"),
    (re.compile(r"Op builtin_code out of range: (\d+)"), "builtin #{0}"),
)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return text.strip()


def _unsupported_op(text: str) -> str | None:
    for pattern, shown in _UNRESOLVED:
        m = pattern.search(text)
        if m:
            return shown.format(*m.groups())
    return None


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_model_file(path: Path) -> int:
    """Raise the specific error for a missing / empty / non-TFLite file; return its size."""
    if not path.exists():
        raise ModelNotFoundError(f"{path}: model file not found")
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: is not a file (expected a .tflite model)")
    size = path.stat().st_size
    if size == 0:
        raise ModelEmptyError(f"{path}: model file is empty (0 bytes); copy or download it again")
    with path.open("rb") as fh:
        head = fh.read(8)
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise ModelFormatError(
            f"{path}: not a TFLite model (no TFL3 flatbuffer identifier in the first 8 bytes); "
            "check that the file is a .tflite model"
        )
    return size


def _check_delegate_library(library: str) -> str | None:
    """Why ``library`` cannot be a TFLite external delegate, or None if it looks usable.

    Checked with ctypes before the runtime's ``load_delegate`` sees it: the runtimes' own
    ``Delegate`` object prints a traceback from its finaliser when the library is missing.
    """
    try:
        lib = ctypes.CDLL(library)
    except OSError as exc:
        return str(exc) or f"cannot load {library}"
    for symbol in ("tflite_plugin_create_delegate", "tflite_plugin_destroy_delegate"):
        if not hasattr(lib, symbol):
            return f"{library} does not export {symbol} (not a TFLite external delegate)"
    return None


DelegateChain = Sequence[DelegateLike | tuple[str, Mapping[str, str]]]
"""Delegates to try in order: objects with ``library``/``options`` or ``(library, options)``."""


class Model:
    """A TFLite model loaded into one interpreter of the selected backend."""

    def __init__(
        self,
        path: Path | str,
        *,
        threads: int = 1,
        delegates: DelegateChain = (),
        backend: str | Backend = "auto",
        accelerators: Sequence[str] = (),
    ) -> None:
        """``accelerators`` (``["npu", "gpu", "cpu"]``): run it through LiteRT's CompiledModel
        on the first that compiles (:mod:`.compiled`) instead of the Interpreter; the
        Interpreter still reads the tensor specs and operators at load, then is let go."""
        self.path = Path(path)
        if threads < 1:
            raise ModelError(f"threads must be >= 1, got {threads}")
        self.threads = int(threads)
        self.delegates_requested: tuple[Delegate, ...] = tuple(
            Delegate(d[0], dict(d[1]))
            if isinstance(d, tuple)
            else Delegate(d.library, dict(d.options))
            for d in delegates
        )
        self.backend = backend if isinstance(backend, Backend) else select_backend(backend)
        self.size = check_model_file(self.path)
        self.sha256 = file_sha256(self.path)
        self.delegate = CPU
        self.delegate_errors: list[str] = []
        self._delegate_obj: Any = None
        self._interp = self._load()
        self.threads_in_use = self.threads
        self.inputs = [TensorSpec.from_details(d) for d in self._interp.get_input_details()]
        self.outputs = [TensorSpec.from_details(d) for d in self._interp.get_output_details()]
        self._in_idx = [t.index for t in self.inputs]
        self._out_idx = [t.index for t in self.outputs]
        self.accelerators = tuple(accelerators)
        self.engine: CompiledEngine | None = None
        self._ops: list[str] | None = None
        if self.accelerators:
            if self.delegates_requested:
                raise ModelError(
                    f"{self.path}: model.delegates and model.accelerator are two engines; "
                    "set one of them (delegates: Interpreter, accelerator: CompiledModel)"
                )
            if self.backend.name != "litert":
                raise ModelError(
                    f"{self.path}: model.accelerator needs the litert backend, not "
                    f"{self.backend.label}"
                )
            self._ops = self.operators()
            self.engine = CompiledEngine(
                self.path, self.accelerators, self.inputs, self.outputs, threads=self.threads
            )
            self.delegate = f"compiled_model:{self.engine.accelerator}"
            self._interp = None  # its tensors are not needed any more
        self._by_threads: dict[int, Any] = {self.threads: self._interp}

    # -- loading ----------------------------------------------------------------------------
    def _make(self, delegate_obj: Any, threads: int | None = None) -> Any:
        """Interpreter + allocate_tensors, turning runtime errors into ModelError types."""
        kwargs: dict[str, Any] = {"model_path": str(self.path),
                                  "num_threads": self.threads if threads is None else threads}
        if delegate_obj is not None:
            kwargs["experimental_delegates"] = [delegate_obj]
        native = None
        try:
            with quiet_native_stderr() as native:
                interp = self.backend.Interpreter(**kwargs)
                interp.allocate_tensors()
            return interp
        except (ValueError, RuntimeError) as exc:
            text = f"{exc} {native.text() if native else ''}"
            if delegate_obj is not None and "delegate" in text.lower():
                raise _DelegateApplyError(_first_line(str(exc))) from None
            op = _unsupported_op(text)
            if op is not None:
                raise UnsupportedOpError(
                    f"{self.path}: operator {op} is not supported by {self.backend.label}; "
                    "rebuild the model with builtin ops or install a runtime that has it"
                ) from None
            if "not a valid flatbuffer" in text.lower():
                raise ModelTruncatedError(
                    f"{self.path}: TFLite flatbuffer is truncated or corrupt ({self.size} bytes); "
                    "copy or download it again"
                ) from None
            raise ModelError(
                f"{self.path}: {self.backend.label} cannot load the model: {_first_line(str(exc))}"
            ) from None

    def _load(self) -> Any:
        for pos, d in enumerate(self.delegates_requested):
            missing = _check_delegate_library(d.library)
            if missing:
                self._fallback(pos, f"failed to load: {missing}")
                continue
            try:
                with quiet_native_stderr(relay=False) as native:
                    obj = self.backend.load_delegate(d.library, dict(d.options))
            except (ValueError, OSError, RuntimeError, AttributeError) as exc:
                detail = _first_line(
                    str(exc).replace(f"Failed to load delegate from {d.library}", "")
                )
                detail = detail or native.text() or type(exc).__name__
                self._fallback(pos, f"failed to load: {detail}")
                continue
            try:
                interp = self._make(obj)
            except _DelegateApplyError as exc:
                self._fallback(pos, f"failed to apply: {exc}")
                continue
            self.delegate = d.library
            self._delegate_obj = obj
            log.info("model %s runs on delegate %s", self.path.name, d.library)
            return interp
        return self._make(None)

    # -- fewer threads for a while (module doc) -----------------------------------------------
    @property
    def can_use_fewer_threads(self) -> bool:
        """True for a model on the plain CPU interpreter (no delegate, no CompiledModel) with
        more than one thread: only there does the thread count change how it runs."""
        return self.threads > 1 and self.engine is None and self.delegate == CPU

    def prepare_threads(self, threads: int) -> None:
        """Build (once) and warm up an interpreter of this file with ``threads`` threads, so
        :meth:`use_threads` can switch to it at once. Any thread may call it while another
        invokes: the new interpreter is its own. Raises ModelError if it cannot be built."""
        if threads in self._by_threads:
            return
        if not self.can_use_fewer_threads or not 1 <= threads < self.threads:
            raise ModelError(
                f"{self.path}: cannot run on {threads} thread(s) "
                f"(configured {self.threads}, delegate {self.delegate})"
            )
        interp = self._make(None, threads)
        for spec in self.inputs:  # warm it: the first invoke allocates and packs the weights
            interp.tensor(spec.index)().fill(0)
        interp.invoke()
        self._by_threads[threads] = interp

    def prepared_threads(self, threads: int) -> bool:
        return threads in self._by_threads

    def use_threads(self, threads: int) -> None:
        """Invoke on the prepared ``threads``-thread interpreter from now on (the configured
        count: back to the first one). Only the thread that invokes calls it, between frames;
        ModelError if that count was not prepared."""
        interp = self._by_threads.get(threads)
        if interp is None:
            raise ModelError(f"{self.path}: no interpreter prepared with {threads} thread(s)")
        self._interp = interp
        self.threads_in_use = threads

    def _fallback(self, pos: int, why: str) -> None:
        """Record and log (one line) why delegate ``pos`` of the chain is skipped."""
        library = self.delegates_requested[pos].library
        self.delegate_errors.append(f"{library}: {why.rstrip('.')}")
        rest = self.delegates_requested[pos + 1 :]
        target = f"next delegate {rest[0].library}" if rest else "CPU"
        log.warning("delegate %s %s; falling back to %s", library, why.rstrip("."), target)

    # -- use ----------------------------------------------------------------------------------
    def input_view(self, i: int = 0) -> np.ndarray:
        """Zero-copy view of input ``i``. Drop it before :meth:`invoke` (the runtime refuses to
        invoke while a view is alive)."""
        if self.engine is not None:
            return self.engine.input_view(i)
        view: np.ndarray = self._interp.tensor(self._in_idx[i])()
        return view

    def set_input(self, i: int, value: np.ndarray) -> None:
        """Copy ``value`` into input ``i`` (for callers that already have the whole tensor)."""
        if self.engine is not None:
            np.copyto(self.engine.input_view(i), value)
            return
        self._interp.set_tensor(self._in_idx[i], value)

    def invoke(self) -> None:
        if self.engine is not None:
            self.engine.invoke()
            return
        self._interp.invoke()

    def output(self, i: int = 0) -> np.ndarray:
        """A copy of output ``i`` (raw: still quantised for int8/uint8 outputs)."""
        if self.engine is not None:
            return self.engine.output(i)
        out: np.ndarray = self._interp.get_tensor(self._out_idx[i])
        return out

    def outputs_all(self) -> list[np.ndarray]:
        if self.engine is not None:
            return self.engine.outputs_all()
        get = self._interp.get_tensor
        return [get(i) for i in self._out_idx]

    def warmup(self, n: int = 2) -> None:
        """Fill every input with its zero point and invoke ``n`` times."""
        for i, spec in enumerate(self.inputs):
            q = spec.quantization
            fill = q.zero_point if q.scales.size == 1 else 0
            view = self.input_view(i)
            view.fill(fill)
            del view
        for _ in range(n):
            self.invoke()

    def clone(self) -> Model:
        """A second interpreter of the same file and settings, for another thread."""
        return Model(
            self.path,
            threads=self.threads,
            delegates=self.delegates_requested,
            backend=self.backend,
            accelerators=self.accelerators,
        )

    def operators(self) -> list[str]:
        """Operator names in execution order."""
        if self._ops is not None:
            return list(self._ops)
        try:
            ops = self._interp._get_ops_details()
        except AttributeError:  # pragma: no cover - every supported runtime has it
            return []
        return [str(op.get("op_name", "?")) for op in ops]

    @property
    def interpreter(self) -> Any:
        """The backend's Interpreter (for benchmarks and tools that need it directly)."""
        return self._interp

    def summary(self) -> dict[str, Any]:
        """What ``models inspect --json`` prints."""
        ops = self.operators()
        counts: dict[str, int] = {}
        for op in ops:
            counts[op] = counts.get(op, 0) + 1
        return {
            "path": str(self.path),
            "size": self.size,
            "sha256": self.sha256,
            "backend": self.backend.label,
            "threads": self.threads,
            "delegate": self.delegate,
            "delegate_errors": list(self.delegate_errors),
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "operators": counts,
            "operator_count": len(ops),
            **(self.engine.summary() if self.engine is not None else {"engine": "interpreter"}),
        }

    def __repr__(self) -> str:
        return (
            f"Model({str(self.path)!r}, backend={self.backend.label!r}, delegate={self.delegate!r})"
        )


class _DelegateApplyError(Exception):
    """Internal: the interpreter could not apply a delegate (the caller falls back)."""
