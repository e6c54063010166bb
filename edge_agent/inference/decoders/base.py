"""The decoder contract and registry: model outputs -> :class:`Result` in frame pixels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from ...errors import DecoderError
from ..description import DecoderSpec, ModelDescription
from ..labels import align_labels
from ..result import Result
from ..tensors import TensorSpec
from ..transform import Transform


class HasTensors(Protocol):
    """Anything with input/output specs (a :class:`Model`, or a stand-in in tests)."""

    @property
    def inputs(self) -> list[TensorSpec]: ...

    @property
    def outputs(self) -> list[TensorSpec]: ...


class Decoder:
    """Base of every decoder. Subclasses check the output shapes in :meth:`check` (raise
    :class:`DecoderError` with a message naming the mismatch) and implement :meth:`decode`."""

    name: ClassVar[str] = ""

    def __init__(self, spec: DecoderSpec, inputs: list[TensorSpec], outputs: list[TensorSpec]):
        self.spec = spec
        self.inputs = inputs
        self.outputs = outputs
        shape = inputs[0].shape if inputs else ()
        self.input_h = int(shape[1]) if len(shape) >= 3 else 1
        self.input_w = int(shape[2]) if len(shape) >= 3 else 1
        self.labels: list[str] = list(spec.labels)
        self.check()

    def label(self, class_id: int) -> str:
        """The name of ``class_id`` (its number when the labels have none)."""
        if 0 <= class_id < len(self.labels) and self.labels[class_id]:
            return self.labels[class_id]
        return str(class_id)

    def align_labels(self, classes: int | None) -> None:
        """Drop a leading background label the model has no class for (see labels.py)."""
        self.labels = align_labels(self.labels, classes)

    def option(self, key: str, default: Any) -> Any:
        return self.spec.options.get(key, default)

    def check(self) -> None:
        """Raise :class:`DecoderError` if the model's outputs do not fit this decoder."""

    def real(self, outputs: list[np.ndarray], i: int) -> np.ndarray:
        """Output ``i`` dequantised to float32."""
        return self.outputs[i].dequantize(outputs[i])

    def fail(self, why: str) -> DecoderError:
        shapes = ", ".join(str(list(t.shape)) for t in self.outputs)
        return DecoderError(
            f"decoder {self.name!r} does not fit this model (outputs {shapes}): {why}; "
            "set the decoder in the model's description JSON or with --decoder"
        )

    def decode(self, outputs: list[np.ndarray], transform: Transform) -> Result:
        raise NotImplementedError

    def output_ranges(self) -> dict[int, tuple[float, float]]:
        """Output index -> the real range ``(low, high)`` in which a value can still change a
        decision. ``models quantize`` gives those outputs (and the tensors that only reshape or
        join into them) this range instead of the calibrated one: values outside saturate and
        no decision changes. Empty: calibrate every output."""
        return {}


D = TypeVar("D", bound=type[Decoder])

_REGISTRY: dict[str, type[Decoder]] = {}


def register_decoder(name: str) -> Callable[[D], D]:
    """Class decorator: make a :class:`Decoder` subclass available under ``name``."""

    def wrap(cls: D) -> D:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def decoder_names() -> list[str]:
    return sorted(_REGISTRY)


def get_decoder(description: ModelDescription, model: HasTensors) -> Decoder:
    """The decoder the description names, set up for ``model``'s tensors."""
    name = description.decoder.name
    cls = _REGISTRY.get(name)
    if cls is None:
        raise DecoderError(f"unknown decoder {name!r}; known: " + ", ".join(decoder_names()))
    return cls(description.decoder, list(model.inputs), list(model.outputs))


def detections_from_boxes(
    decoder: Decoder,
    boxes_model: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    transform: Transform,
    *,
    label_offset: int = 0,
    keypoints_model: np.ndarray | None = None,
) -> Result:
    """Boxes in model-input pixels -> a detection :class:`Result` in frame pixels."""
    from ..result import Detection

    frame_boxes = transform.to_frame(boxes_model)
    dets = []
    for n, (box, score, cid) in enumerate(zip(frame_boxes, scores, class_ids, strict=True)):
        if box[2] <= box[0] or box[3] <= box[1]:
            continue  # nothing of it is inside the frame
        kps: tuple[tuple[float, float], ...] = ()
        if keypoints_model is not None:
            pts = transform.points_to_frame(keypoints_model[n])
            kps = tuple((float(x), float(y)) for x, y in pts)
        cls = int(cid) + label_offset
        dets.append(
            Detection(
                box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                score=float(score),
                label=decoder.label(cls),
                class_id=cls,
                keypoints=kps,
            )
        )
    return Result(kind="detection", detections=dets)
