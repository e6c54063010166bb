"""``raw``: the dequantised output tensors, unchanged (their JSON is bounded, see Result)."""

from __future__ import annotations

import numpy as np

from ..result import Result
from ..transform import Transform
from .base import Decoder, register_decoder


@register_decoder("raw")
class RawDecoder(Decoder):
    def decode(self, outputs: list[np.ndarray], transform: Transform) -> Result:
        return Result(
            kind="raw",
            raw=[self.real(outputs, i) for i in range(len(outputs))],
            raw_names=[t.name for t in self.outputs],
        )
