"""The per-model description: how to feed the model and how to read its outputs.

A JSON file ``<model>.json`` beside the model (later carried by the update manifest)::

    {"schema": 1, "color": "rgb", "resize": "letterbox", "normalize": "symmetric",
     "mean": null, "std": null,
     "decoder": {"name": "blazeface", "threshold": 0.5, "top_k": 100, "iou_threshold": 0.3,
                 "labels": ["face"], "options": {}}}

``normalize`` says what the network expects from a 0..255 pixel ``p``: ``codes`` = the pixel
codes as they are (uint8 inputs get ``p``, int8 ``p - 128``, float ``p``), ``raw`` = p,
``unit`` = p/255, ``symmetric`` = p/127.5 - 1, ``meanstd`` = (p - mean) / std (per channel);
for the last four a quantised input is then quantised with its own scale and zero point.
``decoder.labels`` is a list, or the path of a labels file (relative to the JSON file).
A decoder field left out takes that decoder's default (:data:`DECODER_DEFAULTS`).

Without a JSON file, :func:`infer_description` builds one from the model's TFLite metadata
(when it has some) and its tensors. Every description remembers where each setting came
from (:class:`Origin`: ``metadata``, ``description file``, ``guessed from tensors``,
``default``, ``override``, ``labels file``), which ``models inspect`` prints.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ..errors import DescriptionError
from .anchors import match_layout
from .labels import parse_labels, read_labels
from .metadata import MetadataError, ModelMetadata, TensorInfo, read_metadata

if TYPE_CHECKING:
    from .model import Model
    from .tensors import TensorSpec

log = logging.getLogger("edge_agent.inference")

MAX_DESCRIPTION_BYTES = 1024 * 1024
SCHEMA_VERSION = 1

METADATA = "metadata"
FILE = "description file"
GUESSED = "guessed from tensors"
DEFAULT = "default"
OVERRIDE = "override"
LABELS_FILE = "labels file"
BESIDE = "labels file beside the model"
LABEL_NAMES = ("{stem}.txt", "{stem}_labels.txt", "labels.txt", "labelmap.txt", "coco_labels.txt")

# One default per decoder for the fields a description may leave out (docs/inference.md).
DECODER_DEFAULTS: dict[str, dict[str, Any]] = {
    "classification": {"threshold": 0.0, "top_k": 5, "iou_threshold": 0.45},
    "ssd": {"threshold": 0.5, "top_k": 100, "iou_threshold": 0.45},
    "yolo": {"threshold": 0.25, "top_k": 100, "iou_threshold": 0.45},
    "blazeface": {"threshold": 0.5, "top_k": 100, "iou_threshold": 0.3},
    "segmentation": {"threshold": 0.0, "top_k": 20, "iou_threshold": 0.45},
    "raw": {"threshold": 0.0, "top_k": 100, "iou_threshold": 0.45},
}
_GENERIC_DEFAULTS = {"threshold": 0.5, "top_k": 100, "iou_threshold": 0.45}
DEFAULTED = ("threshold", "top_k", "iou_threshold")
TRACKED = ("color", "resize", "sampling", "normalize", "decoder", *DEFAULTED, "labels", "options")


def decoder_defaults(name: str) -> dict[str, Any]:
    return DECODER_DEFAULTS.get(name, _GENERIC_DEFAULTS)


class DecoderSpec(BaseModel):
    """Which decoder reads the outputs, with its thresholds and labels."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, description="classification | ssd | yolo | blazeface | segmentation | raw"
    )
    threshold: float = Field(default=None, ge=0.0, le=1.0, description="Minimum score kept")  # type: ignore[assignment]
    top_k: int = Field(default=None, ge=1, le=10_000, description="Results kept at most")  # type: ignore[assignment]
    iou_threshold: float = Field(default=None, ge=0.0, le=1.0, description="NMS overlap")  # type: ignore[assignment]
    labels: list[str] = Field(default_factory=list, description="Class names by class id")
    options: dict[str, Any] = Field(default_factory=dict, description="Decoder specific")

    @model_validator(mode="after")
    def _fill_defaults(self) -> DecoderSpec:
        for key, value in decoder_defaults(self.name).items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        return self

    def label(self, class_id: int) -> str:
        if 0 <= class_id < len(self.labels) and self.labels[class_id]:
            return self.labels[class_id]
        return str(class_id)


@dataclass
class Origin:
    """Where each setting of a description came from, and why the input rule applies."""

    sources: dict[str, str] = field(default_factory=dict)
    input_rule: str = ""
    family: str = ""
    metadata: ModelMetadata | None = None
    metadata_error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "sources": dict(self.sources),
            "input_rule": self.input_rule,
            "family": self.family,
            "metadata": self.metadata.to_json() if self.metadata else None,
            "metadata_error": self.metadata_error or None,
        }


class ModelDescription(BaseModel):
    """Pre- and post-processing of one model."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_version: int = Field(default=SCHEMA_VERSION, alias="schema", ge=1, le=SCHEMA_VERSION)
    color: Literal["rgb", "bgr", "gray"] = "rgb"
    resize: Literal["stretch", "letterbox", "crop"] = "stretch"
    sampling: Literal["centre", "corner"] = "centre"
    normalize: Literal["codes", "raw", "unit", "symmetric", "meanstd"] = "unit"
    mean: list[float] | None = None
    std: list[float] | None = None
    decoder: DecoderSpec = Field(default_factory=lambda: DecoderSpec(name="raw"))
    _origin: Origin = PrivateAttr(default_factory=Origin)

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

    @property
    def origin(self) -> Origin:
        return self._origin

    def with_origin(self, origin: Origin) -> ModelDescription:
        self._origin = origin
        return self

    def with_overrides(
        self,
        *,
        decoder: str | None = None,
        threshold: float | None = None,
        top_k: int | None = None,
        labels: list[str] | None = None,
        labels_source: str = OVERRIDE,
    ) -> ModelDescription:
        """A copy with CLI/config overrides applied (``None`` keeps the value)."""
        spec = self.decoder
        changes: dict[str, Any] = {}
        sources = dict(self.origin.sources)
        data = spec.model_dump()
        if decoder is not None and decoder != spec.name:
            changes["name"] = decoder
            changes["options"] = {}
            sources["decoder"] = sources["options"] = OVERRIDE
            for key in DEFAULTED:  # the new decoder's own defaults, unless set explicitly
                if sources.get(key) in (DEFAULT, GUESSED, None):
                    data.pop(key, None)
                    sources[key] = DEFAULT
        for key, value in (("threshold", threshold), ("top_k", top_k)):
            if value is not None:
                changes[key] = value
                sources[key] = OVERRIDE
        if labels is not None:
            changes["labels"] = labels
            sources["labels"] = labels_source
        if not changes:
            return self
        try:
            new_spec = DecoderSpec.model_validate({**data, **changes})
        except ValidationError as err:
            raise DescriptionError(_format(err, "overrides")) from None
        new = self.model_copy(update={"decoder": new_spec})
        origin = Origin(**{**self.origin.__dict__, "sources": sources})
        return new.with_origin(origin)

    def to_json(self) -> dict[str, Any]:
        """The JSON object (``sampling`` only when it is not the default ``centre``, so the
        descriptions written before it existed stay byte for byte the same)."""
        out = self.model_dump(mode="json", by_alias=True)
        if out.get("sampling") == "centre":
            del out["sampling"]
        return out


def _format(err: ValidationError, where: str) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e.get("loc", ())) or "(top level)"
        msg = "unknown key" if e.get("type") == "extra_forbidden" else e.get("msg", "invalid")
        parts.append(f"{key}: {msg}")
    return f"{where}: invalid model description: " + "; ".join(parts)


def _file_sources(data: Mapping[str, Any]) -> dict[str, str]:
    spec = data.get("decoder")
    spec = spec if isinstance(spec, Mapping) else {}
    sources = {}
    for key in ("color", "resize", "sampling", "normalize"):
        sources[key] = FILE if key in data else DEFAULT
    sources["decoder"] = FILE if "name" in spec else DEFAULT
    for key in (*DEFAULTED, "labels", "options"):
        sources[key] = FILE if key in spec else DEFAULT
    return sources


def parse_description(
    data: Mapping[str, Any], where: str = "<description>", base_dir: Path | None = None
) -> ModelDescription:
    """Validate a description object. ``decoder.labels`` may name a labels file, read here
    (relative to ``base_dir``)."""
    body = dict(data)
    spec = body.get("decoder")
    if isinstance(spec, Mapping) and isinstance(spec.get("labels"), str):
        path = Path(spec["labels"])
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        body["decoder"] = {**spec, "labels": read_labels(path)}
    try:
        desc = ModelDescription.model_validate(body)
    except ValidationError as err:
        raise DescriptionError(_format(err, where)) from None
    return desc.with_origin(Origin(sources=_file_sources(data), input_rule="from the description"))


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
    return parse_description(data, str(path), base_dir=path.parent)


def description_path(model_path: Path | str) -> Path:
    """``models/x.tflite`` -> ``models/x.json``."""
    return Path(model_path).with_suffix(".json")


OVERRIDE_KEYS = ("decoder", "threshold", "top_k", "labels")


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
    source = OVERRIDE
    if labels is not None and not isinstance(labels, list):
        labels = read_labels(labels)
        source = LABELS_FILE
    return description.with_overrides(
        decoder=override.get("decoder"),
        threshold=override.get("threshold"),
        top_k=override.get("top_k"),
        labels=labels,
        labels_source=source,
    )


def model_metadata(model_path: Path | str) -> tuple[ModelMetadata | None, str]:
    """The model's metadata, or (None, why) when it is damaged (logged once, one line)."""
    try:
        return read_metadata(model_path), ""
    except MetadataError as exc:
        log.warning("%s; going on without it", exc)
        return None, str(exc)


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
    else built from the model's metadata and tensors (``model`` if given, else the file is
    loaded once to look). A description file without labels takes the metadata's. Then
    ``override`` as a mapping (``decoder``, ``threshold``, ``top_k``, ``labels``) is applied.
    """
    if isinstance(override, ModelDescription):
        return override
    meta, meta_error = model_metadata(model_path)
    beside = description_path(model_path)
    if path is not None or beside.is_file():
        base = read_description(Path(path) if path is not None else beside)
        base.origin.metadata, base.origin.metadata_error = meta, meta_error
        if model is not None and model.inputs:
            base.origin.input_rule = file_rule(model.inputs[0], base)
        if not base.decoder.labels and meta is not None:
            labels = metadata_labels(meta)
            if labels:
                base = base.with_overrides(labels=labels, labels_source=METADATA)
    else:
        if model is None:
            from .model import Model

            model = Model(model_path)
        base = infer_description(model.inputs, model.outputs, model.operators(), meta)
        base.origin.metadata_error = meta_error
    if not base.decoder.labels or base.origin.sources.get("labels") in (DEFAULT, GUESSED):
        found = labels_beside(model_path)
        if found is not None:
            base = base.with_overrides(labels=read_labels(found), labels_source=BESIDE)
    return apply_overrides(base, override)


def file_rule(spec: TensorSpec, desc: ModelDescription) -> str:
    """The input rule of a description file, in one sentence."""
    then = ""
    if spec.dtype.kind in "iu" and desc.normalize != "codes" and spec.quantization.quantized:
        then = ", then quantised with the input's scale and zero point"
    return f"{spec.dtype.name} input: normalize {desc.normalize!r} from the description file{then}"


def labels_beside(model_path: Path | str) -> Path | None:
    """The one labels file next to the model (``<model>.txt``, ``<model>_labels.txt``,
    ``labels.txt``, ``labelmap.txt``, ``coco_labels.txt``), as model zips ship them; None when
    there is none, or more than one."""
    p = Path(model_path)
    found = [p.parent / n.format(stem=p.stem) for n in LABEL_NAMES]
    found = list(dict.fromkeys(f for f in found if f.is_file()))
    return found[0] if len(found) == 1 else None


# -- a description built from the model's metadata and tensors --------------------------------


def _named(mean: tuple[float, ...], std: tuple[float, ...]) -> str:
    """``unit`` / ``symmetric`` when mean/std are exactly those, else ``meanstd``."""
    if set(mean) == {0.0} and set(std) == {255.0}:
        return "unit"
    if set(mean) == {127.5} and set(std) == {127.5}:
        return "symmetric"
    return "meanstd"


def input_rule(
    spec: TensorSpec, meta: TensorInfo | None, float_guess: str
) -> tuple[dict[str, Any], str, str]:
    """(normalize/mean/std, their source, the rule in one sentence) for an input without a
    description: uint8 takes the pixel codes; int8 the metadata's mean/std, else pixel - 128;
    float the metadata's mean/std, else the guess for the model family."""
    has_norm = meta is not None and bool(meta.mean) and bool(meta.std)
    kind = spec.dtype.kind
    if kind == "u" or (kind == "i" and not spec.quantization.quantized):
        ignored = " (the metadata's mean/std are for float inputs; not applied)" if has_norm else ""
        return (
            {"normalize": "codes"},
            GUESSED,
            f"{spec.dtype.name} input: the camera's pixel codes as they are (TFLite convention; "
            f"the Task Library feeds uint8 bytes unchanged){ignored}",
        )
    if has_norm:
        assert meta is not None
        name = _named(meta.mean, meta.std)
        values: dict[str, Any] = {"normalize": name}
        if name == "meanstd":
            values.update(mean=list(meta.mean), std=list(meta.std))
        then = ", then quantised with the input's scale and zero point" if kind == "i" else ""
        return (
            values,
            METADATA,
            f"{spec.dtype.name} input: (p - {list(meta.mean)}) / {list(meta.std)} from the "
            f"model's metadata{then}",
        )
    if kind == "i":
        return {"normalize": "codes"}, GUESSED, "int8 input: pixel - 128 (no metadata says else)"
    return (
        {"normalize": float_guess},
        DEFAULT,
        f"{spec.dtype.name} input without metadata: the documented guess {float_guess!r} "
        + ("(p/127.5 - 1, as MobileNet, EfficientNet-Lite, DeepLab and MediaPipe expect)"
           if float_guess == "symmetric" else ""),
    )


def _squeezed(shape: tuple[int, ...]) -> list[int]:
    return [d for d in shape if d != 1]


def is_segmentation_shape(shape: tuple[int, ...]) -> bool:
    """``[1, H, W, C]`` with a map of at least 8x8, or a class map ``[1, H, W]``."""
    if len(shape) == 4 and shape[0] == 1:
        return min(shape[1], shape[2]) >= 8 and 1 <= shape[3] <= 4096
    if len(shape) == 3 and shape[0] == 1:
        return min(shape[1], shape[2]) >= 8 and max(shape[1], shape[2]) < 4 * min(shape[1:])
    return False


def guess_decoder(
    outputs: list[TensorSpec], operators: list[str], meta: ModelMetadata | None = None
) -> str:
    """Decoder name from the output shapes (and the ops, for SSD post-processing)."""
    shapes = [tuple(d for d in t.shape) for t in outputs]
    if "TFLite_Detection_PostProcess" in operators or (
        len(shapes) == 4 and any(len(s) == 3 and s[-1] == 4 for s in shapes)
    ):
        return "ssd"
    if (
        len(shapes) == 2
        and all(len(s) == 3 for s in shapes)
        and shapes[0][1] == shapes[1][1]
        and sorted(s[-1] for s in shapes)[0] == 1
        and max(s[-1] for s in shapes) >= 4
        and max(s[-1] for s in shapes) % 2 == 0
    ):
        return "blazeface"
    if len(shapes) == 1:
        s = shapes[0]
        if len(_squeezed(s)) == 1:
            return "classification"
        meta_image = bool(meta and meta.outputs and meta.outputs[0].content == "image")
        if is_segmentation_shape(s) or (meta_image and len(s) in (3, 4)):
            return "segmentation"
        if (
            len(s) == 3
            and s[0] == 1
            and min(s[1], s[2]) >= 5
            and max(s[1], s[2]) >= 4 * min(s[1], s[2])
        ):
            return "yolo"
    return "raw"


_RESIZE = {
    "blazeface": "letterbox",
    "ssd": "stretch",
    "yolo": "letterbox",
    "classification": "stretch",
    "segmentation": "stretch",
    "raw": "stretch",
}
_FAMILY = {
    "ssd": "SSD with TFLite_Detection_PostProcess",
    "yolo": "YOLO (v5 / v8 layout)",
    "classification": "classifier",
    "segmentation": "segmentation (DeepLab-style per-pixel classes)",
    "raw": "unrecognised (raw outputs)",
}
SSD_OUTPUT_NAMES = {
    "location": "boxes",
    "category": "classes",
    "score": "scores",
    "number of detections": "count",
}


def metadata_labels(meta: ModelMetadata) -> list[str]:
    """Labels from the first output label file the metadata names (read from the model's zip)."""
    candidates = [t.label_file() for t in meta.outputs]
    for f in [*candidates, *meta.files]:
        if f is not None and f.name in meta.texts:
            return parse_labels(meta.texts[f.name], f"{meta.name or 'model'}: {f.name}")
    return []


def _ssd_options(meta: ModelMetadata, n_outputs: int) -> dict[str, Any]:
    """Which output is which, and the box coordinate order, from the metadata's names."""
    if len(meta.outputs) != n_outputs:
        return {}
    roles = {}
    box_index: tuple[int, ...] = ()
    for i, t in enumerate(meta.outputs):
        role = SSD_OUTPUT_NAMES.get(t.name.strip().lower())
        if t.content == "bounding_box":
            role = "boxes"
            box_index = t.box_index
        if role:
            roles[role] = i
    options: dict[str, Any] = {}
    if sorted(roles) == sorted(SSD_OUTPUT_NAMES.values()):
        options["outputs"] = roles
    if len(box_index) == 4:
        options["box_index"] = list(box_index)  # positions of left, top, right, bottom
    return options


def infer_description(
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    operators: list[str],
    meta: ModelMetadata | None = None,
) -> ModelDescription:
    """The description of a model that ships without one: its metadata, else its tensors."""
    name = guess_decoder(outputs, operators, meta)
    sources = {key: DEFAULT for key in TRACKED}
    sources["decoder"] = GUESSED
    sources["resize"] = GUESSED
    first = inputs[0] if inputs else None
    meta_in = meta.inputs[0] if meta is not None and meta.inputs else None
    spec: dict[str, Any] = {"name": name}
    family = _FAMILY.get(name, name)
    labels: list[str] = []
    if name == "blazeface" and first is not None and len(first.shape) == 4:
        count = max(int(np.prod(t.shape[:-1])) for t in outputs)
        layout = match_layout(int(first.shape[2]), int(first.shape[1]), count)
        if layout is not None:
            family = layout.family
            labels = [layout.label]
            sources["labels"] = GUESSED
    if meta is not None:
        found = metadata_labels(meta)
        if found:
            labels, sources["labels"] = found, METADATA
        if name == "ssd":
            options = _ssd_options(meta, len(outputs))
            if options:
                spec["options"], sources["options"] = options, METADATA
        thresholds = [t.score_threshold for t in meta.outputs if t.score_threshold is not None]
        if thresholds:
            spec["threshold"], sources["threshold"] = thresholds[0], METADATA
    if labels:
        spec["labels"] = labels
    channels = first.shape[-1] if first is not None and len(first.shape) == 4 else 3
    color = "gray" if channels == 1 else "rgb"
    sources["color"] = GUESSED
    if meta_in is not None and meta_in.color_space:
        color, sources["color"] = ("gray" if meta_in.color_space == "gray" else "rgb"), METADATA
    sampling = "centre"
    if meta is not None and meta.author.strip().lower() == "mediapipe":
        sampling, sources["sampling"] = "corner", METADATA
    elif family.startswith("mediapipe"):
        sampling, sources["sampling"] = "corner", GUESSED
    values: dict[str, Any] = {"normalize": "symmetric"}
    rule = "no input"
    if first is not None:
        values, sources["normalize"], rule = input_rule(first, meta_in, "symmetric")
    origin = Origin(sources=sources, input_rule=rule, family=family, metadata=meta)
    return ModelDescription.model_validate(
        {
            "color": color,
            "resize": _RESIZE.get(name, "stretch"),
            "sampling": sampling,
            "decoder": DecoderSpec.model_validate(spec),
            **values,
        }
    ).with_origin(origin)


def normalize_lut(description: ModelDescription, channels: int) -> np.ndarray:
    """Real value the float network expects for each pixel value 0..255: shape (256, channels).
    (``codes`` gives the pixel value itself; integer inputs take it without quantising.)"""
    p = np.arange(256, dtype=np.float64)[:, None].repeat(channels, axis=1)
    if description.normalize in ("raw", "codes"):
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
