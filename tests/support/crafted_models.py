"""Real TFLite models altered at test time for the update tests (no TensorFlow needed).

Each takes a shipped model and rewrites its flatbuffer with the runtime's own
``ai_edge_litert.tools.flatbuffer_utils``:

- :func:`slower_copy`: the same model with its whole operator chain run ``copies`` more times
  into unused tensors: identical inputs and outputs, ``copies + 1`` times the work (XNNPACK does
  not prune the dead chains).
- :func:`nan_model`: a float model whose last bias is NaN, so every output is NaN.
- :func:`crashing_model`: a structurally valid flatbuffer whose CALL_ONCE operators call
  subgraphs 1 -> 2 -> 1 -> ... forever: the interpreter recurses until the stack overflows and
  the process dies with SIGSEGV (the runtime checks self- and two-way calls, not longer cycles).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils as fbu


def slower_copy(src: Path, dst: Path, copies: int = 2) -> Path:
    m: Any = fbu.read_model(str(src))
    sg = m.subgraphs[0]
    ops = list(sg.operators)
    for _ in range(copies):
        mapping: dict[int, int] = {}
        for op in ops:
            dup = copy.deepcopy(op)
            dup.inputs = [mapping.get(int(i), int(i)) if i >= 0 else int(i) for i in op.inputs]
            outs = []
            for t in op.outputs:
                nt = copy.deepcopy(sg.tensors[t])
                m.buffers.append(schema.BufferT())
                nt.buffer = len(m.buffers) - 1
                nt.name = (nt.name or b"") + b"_slow"
                sg.tensors.append(nt)
                mapping[int(t)] = len(sg.tensors) - 1
                outs.append(mapping[int(t)])
            dup.outputs = outs
            sg.operators.append(dup)
    fbu.write_model(m, str(dst))
    return dst


def nan_model(src: Path, dst: Path) -> Path:
    """``src`` must be a float model ending in FULLY_CONNECTED (+ SOFTMAX)."""
    m: Any = fbu.read_model(str(src))
    sg = m.subgraphs[0]
    fc = [o for o in sg.operators
          if m.operatorCodes[o.opcodeIndex].builtinCode == schema.BuiltinOperator.FULLY_CONNECTED]
    bias = sg.tensors[fc[-1].inputs[2]]
    n = int(np.prod(bias.shape))
    m.buffers[bias.buffer].data = np.full(n, np.nan, dtype=np.float32).view(np.uint8)
    fbu.write_model(m, str(dst))
    return dst


def _call_once(m: Any, target: int) -> Any:
    oc = schema.OperatorCodeT()
    oc.builtinCode = schema.BuiltinOperator.CALL_ONCE
    oc.deprecatedBuiltinCode = 127
    oc.version = 1
    m.operatorCodes.append(oc)
    op = schema.OperatorT()
    op.opcodeIndex = len(m.operatorCodes) - 1
    op.inputs, op.outputs = [], []
    opts = schema.CallOnceOptionsT()
    opts.initSubgraphIndex = target
    op.builtinOptionsType = schema.BuiltinOptions.CallOnceOptions
    op.builtinOptions = opts
    return op


def crashing_model(src: Path, dst: Path) -> Path:
    m: Any = fbu.read_model(str(src))
    for i in (1, 2):
        sub = schema.SubGraphT()
        sub.tensors, sub.inputs, sub.outputs = [], [], []
        sub.operators = [_call_once(m, 2 if i == 1 else 1)]
        sub.name = b"cycle%d" % i
        m.subgraphs.append(sub)
    m.subgraphs[0].operators.insert(0, _call_once(m, 1))
    fbu.write_model(m, str(dst))
    return dst


def zeroed_score_head(src: Path, dst: Path, head: bytes = b"classificator") -> Path:
    """The same model with every weight and bias of its score head (the tensors whose names
    start with ``head``) set to zero: it runs as fast as before, finite, and its scores are all
    ``sigmoid(0) = 0.5``, under a detector's threshold: it finds nothing."""
    m: Any = fbu.read_model(str(src))
    sg = m.subgraphs[0]
    zeroed = 0
    for t in sg.tensors:
        buf = m.buffers[t.buffer] if t.buffer < len(m.buffers) else None
        if (t.name or b"").startswith(head) and buf is not None and buf.data is not None:
            buf.data = np.zeros(len(buf.data), dtype=np.uint8)
            zeroed += 1
    if not zeroed:
        raise ValueError(f"{src}: no constant tensor named {head!r}...")
    fbu.write_model(m, str(dst))
    return dst
