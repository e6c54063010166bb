"""The per-model description: how to feed the model and how to read its outputs.

A JSON file ``<model>.json`` beside the model (later carried by the update manifest)::

    {"schema": 1, "color": "rgb", "resize": "letterbox", "normalize": "symmetric",
     "mean": null, "std": null,
     "decoder": {"name": "blazeface", "threshold": 0.5, "top_k": 100, "iou_threshold": 0.3,
                 "labels": ["face"], "options": {}}}

``normalize`` says what the *float* network expects from a 0..255 pixel ``p``: ``raw`` = p,
``unit`` = p/255, ``symmetric`` = p/127.5 - 1, ``meanstd`` = (p - mean) / std (per channel).
Quantised inputs are then quantised with the input tensor's own scale and zero point.
Without a JSON file, :func:`infer_description` guesses from the model's tensors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import DescriptionError

if TYPE_CHECKING:
    from .model import Model
    from .tensors import TensorSpec

MAX_DESCRIPTION_BYTES = 1024 * 1024
SCHEMA_VERSION = 1


class DecoderSpec(BaseModel):
    """Which decoder reads the outputs, with its thresholds and labels."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="classification | ssd | yolo | blazeface | raw")
    threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="Minimum score kept")
    top_k: int = Field(default=100, ge=1, le=10_000, description="Results kept at most")
    iou_threshold: float = Field(default=0.45, ge=0.0, le=1.0, description="NMS overlap")
    labels: list[str] = Field(default_factory=list, description="Class names by class id")
    options: dict[str, Any] = Field(default_factory=dict, description="Decoder specific")

    def label(self, class_id: int) -> str:
        if 0 <= class_id < len(self.labels):
            return self.labels[class_id]
        return str(class_id)


class ModelDescription(BaseModel):
    """Pre- and post-processing of one model."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_version: int = Field(default=SCHEMA_VERSION, alias="schema", ge=1, le=SCHEMA_VERSION)
    color: Literal["rgb", "bgr", "gray"] = "rgb"
    resize: Literal["stretch", "letterbox", "crop"] = "stretch"
    normalize: Literal["raw", "unit", "symmetric", "meanstd"] = "unit"
    mean: list[float] | None = None
    std: list[float] | None = None
    decoder: DecoderSpec = Field(default_factory=lambda: DecoderSpec(name="raw"))

    @model_validator(mode="after")
    def _check_meanstd(self) -> ModelDescription:
        if self.normalize == "meanstd":
            if not self.mean or not self.std:
                raise ValueError('normalize "meanstd" needs "mean" and "std" lists')
            if len(self.mean) != len(self.std):
                raise ValueError('"mean" and "std" must have the same length')
            if any(s == 0 for s in self.std):
                raise ValueError('"std" values must not be 0')
        return self

    def with_overrides(
        self,
        *,
        decoder: str | None = None,
        threshold: float | None = None,
        top_k: int | None = None,
        labels: list[str] | None = None,
    ) -> ModelDescription:
        """A copy with CLI/config overrides applied (``None`` keeps the value)."""
        spec = self.decoder
        changes: dict[str, Any] = {}
        if decoder is not None and decoder != spec.name:
            changes["name"] = decoder
            changes["options"] = {}
        if threshold is not None:
            changes["threshold"] = threshold
        if top_k is not None:
            changes["top_k"] = top_k
        if labels is not None:
            changes["labels"] = labels
        if not changes:
            return self
        try:
            new_spec = DecoderSpec.model_validate({**spec.model_dump(), **changes})
        except ValidationError as err:
            raise DescriptionError(_format(err, "overrides")) from None
        return self.model_copy(update={"decoder": new_spec})

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _format(err: ValidationError, where: str) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e.get("loc", ())) or "(top level)"
        msg = "unknown key" if e.get("type") == "extra_forbidden" else e.get("msg", "invalid")
        parts.append(f"{key}: {msg}")
    return f"{where}: invalid model description: " + "; ".join(parts)


def parse_description(data: Mapping[str, Any], where: str = "<description>") -> ModelDescription:
    try:
        return ModelDescription.model_validate(dict(data))
    except ValidationError as err:
        raise DescriptionError(_format(err, where)) from None


def read_description(path: Path) -> ModelDescription:
    """Read and validate one description JSON file."""
    try:
        size = path.stat().st_size
        if size > MAX_DESCRIPTION_BYTES:
            raise DescriptionError(
                f"{path}: description is {size} bytes, more than {MAX_DESCRIPTION_BYTES}"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DescriptionError(f"{path}: model description not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DescriptionError(f"{path}: cannot read model description: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DescriptionError(f"{path}: model description is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DescriptionError(f"{path}: model description must be a JSON object")
    return parse_description(data, str(path))


def description_path(model_path: Path | str) -> Path:
    """``models/x.tflite`` -> ``models/x.json``."""
    return Path(model_path).with_suffix(".json")


OVERRIDE_KEYS = ("decoder", "threshold", "top_k", "labels")


def read_labels(path: Path | str) -> list[str]:
    """A labels file: one label per line (blank lines kept as empty names, trailing ones cut)."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_DESCRIPTION_BYTES:
            raise DescriptionError(f"{p}: labels file is larger than {MAX_DESCRIPTION_BYTES} bytes")
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DescriptionError(f"{p}: labels file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DescriptionError(f"{p}: cannot read labels file: {exc}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


def apply_overrides(
    description: ModelDescription, override: Mapping[str, Any] | None
) -> ModelDescription:
    """``override`` keys ``decoder``, ``threshold``, ``top_k``, ``labels`` (a list, or the path
    of a labels file); ``None`` values are ignored."""
    if not override:
        return description
    unknown = sorted(set(override) - set(OVERRIDE_KEYS))
    if unknown:
        raise DescriptionError(
            f"unknown description override(s) {', '.join(unknown)}; use " + ", ".join(OVERRIDE_KEYS)
        )
    labels = override.get("labels")
    if labels is not None and not isinstance(labels, list):
        labels = read_labels(labels)
    return description.with_overrides(
        decoder=override.get("decoder"),
        threshold=override.get("threshold"),
        top_k=override.get("top_k"),
        labels=labels,
    )


def load_description(
    model_path: Path | str,
    override: Mapping[str, Any] | ModelDescription | None = None,
    *,
    path: Path | str | None = None,
    model: Model | None = None,
) -> ModelDescription:
    """The description of ``model_path``.

    Taken from, in order: ``override`` when it is a :class:`ModelDescription` (e.g. built from
    an update manifest); the JSON file ``path``; the JSON beside the model (``<model>.json``);
    else defaults guessed from the model's tensors (``model`` if given, else the file is loaded
    once to look). Then ``override`` as a mapping (``decoder``, ``threshold``, ``top_k``,
    ``labels``) is applied on top.
    """
    if isinstance(override, ModelDescription):
        return override
    beside = description_path(model_path)
    if path is not None:
        base = read_description(Path(path))
    elif beside.is_file():
        base = read_description(beside)
    else:
        if model is None:
            from .model import Model

            model = Model(model_path)
        base = infer_description(model.inputs, model.outputs, model.operators())
    return apply_overrides(base, override)


# -- defaults when there is no description ----------------------------------------------------


def _guess_normalize(spec: TensorSpec) -> Literal["raw", "unit", "symmetric"]:
    """From a quantised input's scale: 1/255 -> unit, ~1/128 -> symmetric, 1 -> raw."""
    q = spec.quantization
    if not q.quantized or spec.dtype.kind == "f":
        return "unit"
    scale = q.scale
    if abs(scale - 1.0) < 0.05:
        return "raw"
    if abs(scale * 127.5 - 1.0) < 0.05:
        return "symmetric"
    return "unit"


def guess_decoder(outputs: list[TensorSpec], operators: list[str]) -> str:
    """Decoder name from the output shapes (and the ops, for SSD post-processing)."""
    shapes = [tuple(d for d in t.shape) for t in outputs]
    if "TFLite_Detection_PostProcess" in operators or (
        len(shapes) == 4 and any(len(s) == 3 and s[-1] == 4 for s in shapes)
    ):
        return "ssd"
    if len(shapes) == 2 and sorted(s[-1] for s in shapes) == [1, 16] and len(shapes[0]) == 3:
        return "blazeface"
    if len(shapes) == 1:
        s = shapes[0]
        squeezed = [d for d in s if d != 1]
        if len(squeezed) == 1:
            return "classification"
        if (
            len(s) == 3
            and s[0] == 1
            and min(s[1], s[2]) >= 5
            and max(s[1], s[2]) >= 4 * min(s[1], s[2])
        ):
            return "yolo"
    return "raw"


_DEFAULTS: dict[str, dict[str, Any]] = {
    "blazeface": {
        "resize": "letterbox",
        "normalize": "symmetric",
        "iou_threshold": 0.3,
        "labels": ["face"],
    },
    "ssd": {"resize": "stretch"},
    "yolo": {"resize": "letterbox"},
    "classification": {"resize": "crop", "threshold": 0.0, "top_k": 5},
    "raw": {},
}


def infer_description(
    inputs: list[TensorSpec], outputs: list[TensorSpec], operators: list[str]
) -> ModelDescription:
    """Sensible defaults for a model that ships without a description."""
    name = guess_decoder(outputs, operators)
    defaults = dict(_DEFAULTS[name])
    first = inputs[0] if inputs else None
    channels = first.shape[-1] if first is not None and len(first.shape) == 4 else 3
    if first is None or first.dtype.kind == "f":
        normalize = defaults.get("normalize", "unit")
    else:  # a quantised input's scale says what range the float network was calibrated on
        normalize = _guess_normalize(first)
    spec: dict[str, Any] = {"name": name}
    for key in ("threshold", "top_k", "iou_threshold", "labels"):
        if key in defaults:
            spec[key] = defaults[key]
    return ModelDescription(
        color="gray" if channels == 1 else "rgb",
        resize=defaults.get("resize", "stretch"),
        normalize=normalize,
        decoder=DecoderSpec.model_validate(spec),
    )


def normalize_lut(description: ModelDescription, channels: int) -> np.ndarray:
    """Real value the float network expects for each pixel value 0..255: shape (256, channels)."""
    p = np.arange(256, dtype=np.float64)[:, None].repeat(channels, axis=1)
    if description.normalize == "raw":
        return p
    if description.normalize == "unit":
        return p / 255.0
    if description.normalize == "symmetric":
        return p / 127.5 - 1.0
    mean = np.asarray(description.mean, np.float64)
    std = np.asarray(description.std, np.float64)
    if mean.size not in (1, channels) or std.size not in (1, channels):
        raise DescriptionError(
            f"mean/std have {mean.size}/{std.size} values but the model input has "
            f"{channels} channel(s)"
        )
    return (p - mean) / std
