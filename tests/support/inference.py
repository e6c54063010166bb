"""Shared by the inference tests: where the real models and photos are, and crafted bad models.

The shipped models live in ``models/`` and the photos in ``tests/data/`` (both committed, with
provenance in their READMEs); a missing one is a failure, never a skip.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils as fu

from tests.support.helpers import DATA, MODELS


def model_path(name: str) -> Path:
    """``models/NAME``, which must be shipped."""
    p = MODELS / name
    assert p.is_file(), f"models/{name} is missing: the shipped models are part of the repo"
    return p


def blazeface_float() -> Path:
    return model_path("blazeface_float32.tflite")


def photo(name: str) -> Path:
    """``tests/data/NAME.jpg``."""
    p = DATA / f"{name}.jpg"
    assert p.is_file(), f"tests/data/{name}.jpg is missing"
    return p


def astronaut_face() -> tuple[float, float, float, float]:
    """The face box checked by eye, from ``tests/data/astronaut_face.json``."""
    box = json.loads((DATA / "astronaut_face.json").read_text())["box"]
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1, y1, x2, y2)


# -- crafted models (written at test time from a real one) ------------------------------------


def custom_op_model(src: Path, out: Path, op_name: str = "EdgeAgentMadeUpOp") -> Path:
    """``src`` with its first operator code turned into a CUSTOM op called ``op_name``."""
    m = fu.read_model(str(src))
    code = m.operatorCodes[0]
    code.builtinCode = schema.BuiltinOperator.CUSTOM
    code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = op_name.encode()
    fu.write_model(m, str(out))
    return out


def op_version_model(src: Path, out: Path, version: int = 99) -> Path:
    """``src`` claiming its first operator needs ``version`` (as a newer converter would)."""
    m = fu.read_model(str(src))
    m.operatorCodes[0].version = version
    fu.write_model(m, str(out))
    return out


def two_input_model(src: Path, out: Path) -> Path:
    """``src`` with a second (unused) input tensor shaped like the first."""
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


def exp_model(src: Path, out: Path) -> Path:
    """``src`` (a float classifier ending in SOFTMAX) with EXP in its place: it runs in float,
    but ai-edge-quantizer has no integer rule for EXP."""
    m = fu.read_model(str(src))
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.EXP
    code.version = 1
    m.operatorCodes.append(code)
    for op in m.subgraphs[0].operators:
        if m.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.SOFTMAX:
            op.opcodeIndex = len(m.operatorCodes) - 1
            op.builtinOptions = None
            op.builtinOptionsType = 0
    fu.write_model(m, str(out))
    return out


def digits_folders(root: Path, start: int = 0, stop: int | None = None) -> Path:
    """Held-out digits ``[start:stop]`` as PNGs in a folder per class (``root/<label>/n.png``):
    the ground-truth layout ``models compare --truth`` reads."""
    import cv2
    import numpy as np

    data = np.load(DATA / "digits_test.npz")
    for n, (img, label) in enumerate(zip(data["images"][start:stop], data["labels"][start:stop],
                                         strict=True)):
        folder = root / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(folder / f"{start + n:03d}.png"), img)
    return root
