"""Which TFLite runtime runs the models: LiteRT, then tflite-runtime, then TensorFlow Lite.

All three expose the same ``Interpreter`` / ``load_delegate`` API; :func:`select_backend` picks
the first one that imports (or the one asked for) and remembers its name and version so every
result can say what produced it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..common.extras import pip_hint
from ..errors import BackendError
from .native import quiet_native_stderr

BACKEND_NAMES = ("litert", "tflite_runtime", "tensorflow")

# name -> (module holding Interpreter/load_delegate, distribution names to read the version of)
_SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "litert": ("ai_edge_litert.interpreter", ("ai-edge-litert", "ai-edge-litert-nightly")),
    "tflite_runtime": ("tflite_runtime.interpreter", ("tflite-runtime", "tflite_runtime")),
    "tensorflow": ("tensorflow", ("tensorflow", "tensorflow-cpu", "tf-nightly")),
}
_INSTALL_HINT = {
    "litert": "pip install ai-edge-litert",
    "tflite_runtime": pip_hint("legacy") + " (tflite-runtime, needs numpy<2)",
    "tensorflow": "pip install tensorflow-cpu",
}


@dataclass(frozen=True)
class Backend:
    """One importable TFLite runtime."""

    name: str
    version: str
    Interpreter: Callable[..., Any]
    load_delegate: Callable[..., Any]

    @property
    def label(self) -> str:
        """``"litert 2.3.0"``: what results report as their backend."""
        return f"{self.name} {self.version}"

    def __str__(self) -> str:
        return self.label


_cache: dict[str, Backend] = {}
_lock = threading.Lock()


def _version(dists: tuple[str, ...], module: Any) -> str:
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return str(getattr(module, "__version__", "unknown"))


def _quiet_tf_interpreter(cls: Callable[..., Any]) -> Callable[..., Any]:
    """TensorFlow's Interpreter warns on every construction that it is deprecated in favour
    of LiteRT; whoever forced this backend knows, so say it once in the debug log."""

    def make(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated")
            return cls(*args, **kwargs)

    return make


def _import(name: str) -> Backend:
    module_name, dists = _SOURCES[name]
    with quiet_native_stderr(only_runtime=True):
        module = importlib.import_module(module_name)
    if name == "tensorflow":
        interpreter_cls = _quiet_tf_interpreter(module.lite.Interpreter)
        load_delegate = module.lite.experimental.load_delegate
        version = str(module.__version__)
    else:
        interpreter_cls = module.Interpreter
        load_delegate = module.load_delegate
        version = _version(dists, importlib.import_module(module_name.split(".")[0]))
    return Backend(name, version, interpreter_cls, load_delegate)


def select_backend(name: str = "auto") -> Backend:
    """The backend called ``name``, or with ``"auto"`` the first importable of
    LiteRT, tflite-runtime, TensorFlow Lite. Raises :class:`BackendError` if none is usable."""
    if name != "auto" and name not in _SOURCES:
        raise BackendError(
            f"unknown inference backend {name!r}; choose auto, " + ", ".join(BACKEND_NAMES)
        )
    order = BACKEND_NAMES if name == "auto" else (name,)
    with _lock:
        if name in _cache:
            return _cache[name]
        reasons = []
        for candidate in order:
            if candidate in _cache:
                backend = _cache[candidate]
            else:
                try:
                    backend = _import(candidate)
                except Exception as exc:  # ImportError, or a broken install raising anything
                    reasons.append(f"{candidate}: {type(exc).__name__}: {exc}".splitlines()[0])
                    continue
                _cache[candidate] = backend
            _cache[name] = backend
            return backend
    if name == "auto":
        raise BackendError(
            "no TFLite runtime is installed ("
            + "; ".join(reasons)
            + "); "
            + _INSTALL_HINT["litert"]
        )
    raise BackendError(
        f"inference backend {name!r} is not usable ({reasons[0]}); {_INSTALL_HINT[name]}"
    )
