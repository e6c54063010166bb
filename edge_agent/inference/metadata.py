"""TFLite Model Metadata: read what a published model says about itself (no TensorFlow).

A ``.tflite`` file may list a buffer named ``TFLITE_METADATA`` holding a second flatbuffer
(schema ``metadata_schema.fbs`` of tflite-support, identifier ``M001``): name, version, author,
licence; per input the image colour space and normalisation (mean/std per channel); per output
what it holds (bounding boxes with their coordinate order and type, scores, classes) and its
label files. The label files themselves ride along as a zip archive appended to the model
(``associated files``), read here with :mod:`zipfile`.

Read with :mod:`.flatbuf`, a hand-written bounds-checked reader of just these fields; a damaged
metadata block raises :class:`MetadataError` (the caller warns and goes on without it: the model
itself still runs).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .flatbuf import FlatbufferError, Table

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MAX_LABEL_FILE_BYTES = 1024 * 1024

ASSOCIATED_FILE_TYPES = (
    "UNKNOWN",
    "DESCRIPTIONS",
    "TENSOR_AXIS_LABELS",
    "TENSOR_VALUE_LABELS",
    "TENSOR_AXIS_SCORE_CALIBRATION",
    "VOCABULARY",
    "SCANN_INDEX_FILE",
)
LABEL_FILE_TYPES = ("TENSOR_AXIS_LABELS", "TENSOR_VALUE_LABELS")
_CONTENT = {1: "feature", 2: "image", 3: "bounding_box", 4: "audio"}
_COLOR = {0: "", 1: "rgb", 2: "gray"}
_BOX_TYPE = {0: "", 1: "boundaries", 2: "upper_left", 3: "center"}
_COORD = {0: "ratio", 1: "pixel"}
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union member
_SCORE_THRESHOLD_OPTIONS = 3


class MetadataError(ValueError):
    """The model's metadata block (or its associated files) cannot be read."""


@dataclass(frozen=True)
class AssociatedFile:
    name: str
    type: str
    description: str = ""
    locale: str = ""


@dataclass(frozen=True)
class TensorInfo:
    """What the metadata says of one input or output tensor (empty fields: not said)."""

    name: str = ""
    description: str = ""
    content: str = ""  # image | bounding_box | feature | audio
    color_space: str = ""  # rgb | gray
    box_index: tuple[int, ...] = ()  # positions of left, top, right, bottom in the last axis
    box_type: str = ""  # boundaries | upper_left | center
    box_coordinates: str = ""  # ratio | pixel
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    stats_min: tuple[float, ...] = ()
    stats_max: tuple[float, ...] = ()
    score_threshold: float | None = None
    files: tuple[AssociatedFile, ...] = ()

    def label_file(self) -> AssociatedFile | None:
        """This tensor's label file (the one without a locale, else ``en``, else the first)."""
        labels = [f for f in self.files if f.type in LABEL_FILE_TYPES]
        for pick in (lambda f: not f.locale, lambda f: f.locale.lower().startswith("en")):
            for f in labels:
                if pick(f):
                    return f
        return labels[0] if labels else None


@dataclass(frozen=True)
class ModelMetadata:
    name: str = ""
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
    min_parser_version: str = ""
    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()
    files: tuple[AssociatedFile, ...] = ()
    archive: tuple[str, ...] = ()  # names in the appended zip
    texts: dict[str, str] = field(default_factory=dict)  # label files read from the zip

    def to_json(self) -> dict[str, object]:
        def tensor(t: TensorInfo) -> dict[str, object]:
            out: dict[str, object] = {"name": t.name}
            for key in ("description", "content", "color_space", "box_type", "box_coordinates"):
                if getattr(t, key):
                    out[key] = getattr(t, key)
            for key in ("box_index", "mean", "std", "stats_min", "stats_max"):
                if getattr(t, key):
                    out[key] = list(getattr(t, key))
            if t.score_threshold is not None:
                out["score_threshold"] = t.score_threshold
            if t.files:
                out["files"] = [f"{f.name} ({f.type})" for f in t.files]
            return out

        return {
            "name": self.name,
            "version": self.version,
            "author": self.author,
            "license": self.license,
            "description": self.description,
            "min_parser_version": self.min_parser_version,
            "inputs": [tensor(t) for t in self.inputs],
            "outputs": [tensor(t) for t in self.outputs],
            "files": [f"{f.name} ({f.type})" for f in self.files],
            "archive": list(self.archive),
        }


def _files(table: Table, slot: int) -> tuple[AssociatedFile, ...]:
    out = []
    for f in table.tables(slot):
        kind = int(f.scalar(2, "b"))
        out.append(
            AssociatedFile(
                name=f.string(0) or "",
                description=f.string(1) or "",
                type=ASSOCIATED_FILE_TYPES[kind] if 0 <= kind < len(ASSOCIATED_FILE_TYPES) else "",
                locale=f.string(3) or "",
            )
        )
    return tuple(out)


def _tensor(t: Table) -> TensorInfo:
    info: dict[str, object] = {
        "name": t.string(0) or "",
        "description": t.string(1) or "",
        "files": _files(t, 6),
    }
    content = t.table(3)
    if content is not None:
        kind, props = content.union(0)
        info["content"] = _CONTENT.get(kind, "")
        if props is not None and kind == 2:  # ImageProperties
            info["color_space"] = _COLOR.get(int(props.scalar(0, "b")), "")
        if props is not None and kind == 3:  # BoundingBoxProperties
            info["box_index"] = tuple(int(i) for i in props.scalars(0, "I"))
            info["box_type"] = _BOX_TYPE.get(int(props.scalar(1, "b")), "")
            info["box_coordinates"] = _COORD.get(int(props.scalar(2, "b")), "")
    for unit in t.tables(4):
        kind, options = unit.union(0)
        if options is None:
            continue
        if kind == _NORMALIZATION_OPTIONS:
            info["mean"] = tuple(float(v) for v in options.scalars(0, "f"))
            info["std"] = tuple(float(v) for v in options.scalars(1, "f"))
        elif kind == _SCORE_THRESHOLD_OPTIONS:
            info["score_threshold"] = float(options.scalar(0, "f"))
    stats = t.table(5)
    if stats is not None:
        info["stats_max"] = tuple(float(v) for v in stats.scalars(0, "f"))
        info["stats_min"] = tuple(float(v) for v in stats.scalars(1, "f"))
    return TensorInfo(**info)  # type: ignore[arg-type]


def parse_metadata(buf: bytes | memoryview) -> ModelMetadata:
    """The ``TFLITE_METADATA`` flatbuffer (without the associated files)."""
    root = Table.root(buf, METADATA_IDENTIFIER)
    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()
    files = _files(root, 6)
    for sub in root.tables(3):  # first subgraph: TFLite runs one
        inputs = tuple(_tensor(t) for t in sub.tables(2))
        outputs = tuple(_tensor(t) for t in sub.tables(3))
        files = files + _files(sub, 4)
        break
    return ModelMetadata(
        name=root.string(0) or "",
        description=root.string(1) or "",
        version=root.string(2) or "",
        author=root.string(4) or "",
        license=root.string(5) or "",
        min_parser_version=root.string(7) or "",
        inputs=inputs,
        outputs=outputs,
        files=files,
    )


def metadata_buffer(model: bytes | memoryview) -> memoryview | None:
    """The bytes of the model's ``TFLITE_METADATA`` buffer, or None if it has none."""
    root = Table.root(model)
    wanted = None
    for entry in root.tables(6):  # Model.metadata
        if entry.string(0) == METADATA_NAME:
            wanted = int(entry.scalar(1, "I"))
            break
    if wanted is None:
        return None
    buffers = list(root.tables(4))  # Model.buffers
    if not 0 <= wanted < len(buffers):
        raise FlatbufferError(f"{METADATA_NAME} names buffer {wanted} of {len(buffers)}")
    buf = buffers[wanted]
    data = buf.bytes_view(0)
    if len(data):
        return data
    offset, size = int(buf.scalar(1, "Q")), int(buf.scalar(2, "Q"))
    if offset > 1 and size and offset + size <= len(model):  # large-model layout
        return memoryview(model)[offset : offset + size]
    raise FlatbufferError(f"{METADATA_NAME} buffer {wanted} is empty")


def _archive(path: Path, meta: ModelMetadata) -> tuple[tuple[str, ...], dict[str, str]]:
    """Names in the zip appended to the model, and the text of its label files."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = tuple(zf.namelist())
            wanted = {f.name for t in meta.outputs for f in t.files if f.type in LABEL_FILE_TYPES}
            wanted |= {f.name for f in meta.files if f.type in LABEL_FILE_TYPES}
            texts = {}
            for name in sorted(wanted & set(names)):
                info = zf.getinfo(name)
                if info.file_size > MAX_LABEL_FILE_BYTES:
                    raise MetadataError(
                        f"associated file {name} is {info.file_size} bytes, more than "
                        f"{MAX_LABEL_FILE_BYTES}"
                    )
                texts[name] = zf.read(name).decode("utf-8", "replace")
            return names, texts
    except zipfile.BadZipFile:
        return (), {}
    except (OSError, zipfile.LargeZipFile, RuntimeError, ValueError) as exc:
        if isinstance(exc, MetadataError):
            raise
        raise MetadataError(f"associated files cannot be read: {exc}") from None


def read_metadata(path: Path | str) -> ModelMetadata | None:
    """The metadata of the model file at ``path`` (None when it carries none)."""
    p = Path(path)
    try:
        data = p.read_bytes()
        raw = metadata_buffer(data)
        meta = parse_metadata(raw) if raw is not None else None
    except FlatbufferError as exc:
        raise MetadataError(f"{p}: model metadata is damaged: {exc}") from None
    except (OSError, ValueError) as exc:
        raise MetadataError(f"{p}: cannot read model metadata: {exc}") from None
    if meta is None:
        return None
    names, texts = _archive(p, meta)
    return ModelMetadata(**{**meta.__dict__, "archive": names, "texts": texts})
