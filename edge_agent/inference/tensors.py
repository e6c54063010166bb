"""Tensor specs and the quantisation maths (pure numpy, no interpreter).

Affine quantisation as TFLite defines it: ``real = scale * (q - zero_point)``; per-tensor
(one scale) or per-channel (one scale and zero point per index along ``axis``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

_EMPTY_F = np.zeros(0, dtype=np.float32)
_EMPTY_I = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Quantization:
    """Affine quantisation parameters of one tensor (empty arrays: not quantised)."""

    scales: npt.NDArray[np.float32] = field(default_factory=lambda: _EMPTY_F)
    zero_points: npt.NDArray[np.int64] = field(default_factory=lambda: _EMPTY_I)
    axis: int = 0

    @classmethod
    def per_tensor(cls, scale: float, zero_point: int) -> Quantization:
        return cls(np.array([scale], np.float32), np.array([zero_point], np.int64), 0)

    @classmethod
    def per_channel(cls, scales: Any, zero_points: Any, axis: int) -> Quantization:
        return cls(
            np.asarray(scales, np.float32).reshape(-1),
            np.asarray(zero_points, np.int64).reshape(-1),
            axis,
        )

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> Quantization:
        """From an interpreter's ``get_input_details()`` entry."""
        qp = details.get("quantization_parameters") or {}
        scales = np.asarray(qp.get("scales", []), np.float32).reshape(-1)
        zps = np.asarray(qp.get("zero_points", []), np.int64).reshape(-1)
        if scales.size == 0 or not np.any(scales):
            return cls()
        if zps.size != scales.size:
            zps = np.broadcast_to(zps if zps.size else np.zeros(1, np.int64), scales.shape).copy()
        return cls(scales, zps, int(qp.get("quantized_dimension", 0)))

    @property
    def scale(self) -> float:
        """The per-tensor scale; 0.0 when not quantised or per-channel (see ``scales``)."""
        return float(self.scales[0]) if self.scales.size == 1 else 0.0

    @property
    def zero_point(self) -> int:
        """The per-tensor zero point; 0 when not quantised or per-channel."""
        return int(self.zero_points[0]) if self.zero_points.size == 1 else 0

    @property
    def quantized(self) -> bool:
        return self.scales.size > 0

    @property
    def per_channel_axis(self) -> int | None:
        return self.axis if self.scales.size > 1 else None

    def _params(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        """Scale and zero point shaped to broadcast against an ``ndim`` array."""
        if self.scales.size <= 1:
            return self.scales.reshape(()), self.zero_points.reshape(())
        shape = [1] * ndim
        shape[self.axis] = self.scales.size
        return self.scales.reshape(shape), self.zero_points.reshape(shape)

    def quantize(self, real: npt.ArrayLike, dtype: npt.DTypeLike) -> np.ndarray:
        """Round to nearest, then saturate to ``dtype``'s range."""
        x = np.asarray(real, np.float64)
        dt = np.dtype(dtype)
        if not self.quantized:
            return x.astype(dt)
        scale, zp = self._params(x.ndim)
        q = np.rint(x / scale.astype(np.float64)) + zp
        info = np.iinfo(dt)
        return np.clip(q, info.min, info.max).astype(dt)

    def dequantize(self, q: npt.ArrayLike) -> npt.NDArray[np.float32]:
        arr = np.asarray(q)
        if not self.quantized:
            return arr.astype(np.float32)
        scale, zp = self._params(arr.ndim)
        return ((arr.astype(np.float32) - zp.astype(np.float32)) * scale).astype(np.float32)

    def to_json(self) -> dict[str, Any] | None:
        if not self.quantized:
            return None
        if self.scales.size == 1:
            return {"scale": float(self.scales[0]), "zero_point": int(self.zero_points[0])}
        return {
            "axis": self.axis,
            "scales": [float(s) for s in self.scales],
            "zero_points": [int(z) for z in self.zero_points],
        }


@dataclass(frozen=True)
class TensorSpec:
    """Name, interpreter index, shape, dtype and quantisation of one model input/output."""

    name: str
    index: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    quantization: Quantization = field(default_factory=Quantization)

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> TensorSpec:
        return cls(
            name=str(details.get("name", "")),
            index=int(details["index"]),
            shape=tuple(int(d) for d in details["shape"]),
            dtype=np.dtype(details["dtype"]),
            quantization=Quantization.from_details(details),
        )

    def dequantize(self, arr: np.ndarray) -> npt.NDArray[np.float32]:
        """Real values of an output array (float outputs are returned as float32)."""
        if self.quantization.quantized and np.issubdtype(arr.dtype, np.integer):
            return self.quantization.dequantize(arr)
        return np.asarray(arr, np.float32)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "index": self.index,
            "shape": list(self.shape),
            "dtype": self.dtype.name,
            "quantization": self.quantization.to_json(),
        }

    def describe(self) -> str:
        """One line: ``input [1,128,128,3] int8 scale=0.0078 zp=-1``."""
        q = self.quantization
        if not q.quantized:
            qtext = ""
        elif q.scales.size == 1:
            qtext = f" scale={float(q.scales[0]):.6g} zp={int(q.zero_points[0])}"
        else:
            qtext = f" per-channel(axis={q.axis}, {q.scales.size} scales)"
        shape = ",".join(str(d) for d in self.shape)
        return f"{self.name} [{shape}] {self.dtype.name}{qtext}"
