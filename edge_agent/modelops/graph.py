"""TFLite flatbuffer surgery for quantisation, each step reported when it changed something.

What making our int8 BlazeFace taught, made generic (``models/README.md`` tells the story):

- :func:`mend_opcodes` — old-schema files keep the operator code only in
  ``deprecated_builtin_code`` and leave ``builtin_code`` 0 (= ADD). The runtime reads the larger
  of the two; ai-edge-quantizer reads ``builtin_code`` only and so treated every op as ADD.
- :func:`fold_dequantize` — float16 weights behind DEQUANTIZE ops become float32 constants
  (the quantizer does not take them as weights otherwise), tensors left orphaned are dropped
  (its calibrator reads every tensor and fails on one nothing produces).
- :func:`fuse_activations` — a standalone RELU / RELU6 after CONV_2D, DEPTHWISE_CONV_2D,
  FULLY_CONNECTED or ADD becomes that op's fused activation (XNNPACK takes no standalone int8
  RELU: the int8 BlazeFace split into 18 delegate partitions and ran 9x slower).
- :func:`add_signature` — a ``serving_default`` SignatureDef when the model has none (the
  quantizer's calibrator feeds signatures).
- :func:`set_io_types` — after quantising: the input as int8 / uint8 / float, outputs int8 /
  float, with QUANTIZE / DEQUANTIZE ops at the edges.

Uses the runtime's own ``ai_edge_litert`` flatbuffer schema (no TensorFlow). Each function
takes and returns the object model (``ModelT``) and says what it did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError


@dataclass(frozen=True)
class Step:
    """One rewrite that was applied: a short name and what it changed."""

    name: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"step": self.name, "detail": self.detail}


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated as schema

    return schema


def read(data: bytes) -> Any:
    from ai_edge_litert.tools import flatbuffer_utils

    try:
        return flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    except Exception as exc:  # the generated reader raises anything on a bad buffer
        raise ModelError(f"cannot parse the TFLite flatbuffer: {exc}") from None


def write(model: Any) -> bytes:
    from ai_edge_litert.tools import flatbuffer_utils

    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def op_code(model: Any, op: Any) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return int(max(code.builtinCode, code.deprecatedBuiltinCode))


def op_name(code: int) -> str:
    ops = _schema().BuiltinOperator
    for name, value in vars(ops).items():
        if not name.startswith("_") and value == code:
            return str(name)
    return f"builtin #{code}"


def tensor_name(graph: Any, index: int) -> str:
    name = graph.tensors[index].name
    return name.decode() if isinstance(name, bytes) else str(name)


def mend_opcodes(model: Any) -> Step | None:
    fixed = []
    for code in model.operatorCodes:
        if code.builtinCode < code.deprecatedBuiltinCode:
            code.builtinCode = code.deprecatedBuiltinCode
            fixed.append(op_name(code.builtinCode))
    if not fixed:
        return None
    return Step(
        "mend-opcodes",
        f"{len(fixed)} operator code(s) only in the old deprecated_builtin_code field, copied to "
        f"builtin_code ({', '.join(sorted(set(fixed)))})",
    )


def fold_dequantize(model: Any) -> Step | None:
    schema = _schema()
    folded = 0
    for graph in model.subgraphs:
        replace: dict[int, int] = {}
        kept = []
        outputs = {int(t) for t in graph.outputs}
        for op in graph.operators:
            src = int(op.inputs[0]) if len(op.inputs) else -1
            tensor = graph.tensors[src] if src >= 0 else None
            data = None if tensor is None else model.buffers[tensor.buffer].data
            if (
                op_code(model, op) != schema.BuiltinOperator.DEQUANTIZE
                or tensor is None
                or tensor.type != schema.TensorType.FLOAT16
                or data is None
                or int(op.outputs[0]) in outputs
            ):
                kept.append(op)
                continue
            as_f32 = np.frombuffer(bytes(data), dtype=np.float16).astype(np.float32)
            model.buffers[tensor.buffer].data = np.frombuffer(as_f32.tobytes(), dtype=np.uint8)
            tensor.type = schema.TensorType.FLOAT32
            replace[int(op.outputs[0])] = src
            folded += 1
        for op in kept:
            op.inputs = [replace.get(int(i), int(i)) for i in op.inputs]
        graph.operators = kept
        drop_orphans(graph)
    if not folded:
        return None
    return Step(
        "fold-dequantize",
        f"{folded} float16 constant(s) behind DEQUANTIZE folded into float32 constants",
    )


_FUSABLE = {"ADD", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def fuse_activations(model: Any) -> Step | None:
    schema = _schema()
    acts = {
        schema.BuiltinOperator.RELU: schema.ActivationFunctionType.RELU,
        schema.BuiltinOperator.RELU6: schema.ActivationFunctionType.RELU6,
    }
    fused = 0
    for graph in model.subgraphs:
        ops = graph.operators
        producer = {int(t): op for op in ops for t in op.outputs}
        consumers: dict[int, int] = {}
        for op in ops:
            for t in op.inputs:
                consumers[int(t)] = consumers.get(int(t), 0) + 1
        outputs = {int(t) for t in graph.outputs}
        drop = set()
        for i, op in enumerate(ops):
            act = acts.get(op_code(model, op))
            if act is None:
                continue
            src = int(op.inputs[0])
            prev = producer.get(src)
            if prev is None or consumers.get(src) != 1 or src in outputs:
                continue
            if op_name(op_code(model, prev)) not in _FUSABLE:
                continue
            options = prev.builtinOptions
            if options is None and op_code(model, prev) == schema.BuiltinOperator.ADD:
                options = prev.builtinOptions = schema.AddOptionsT()
                prev.builtinOptionsType = schema.BuiltinOptions.AddOptions
            if options is None or not hasattr(options, "fusedActivationFunction"):
                continue
            if options.fusedActivationFunction != schema.ActivationFunctionType.NONE:
                continue
            options.fusedActivationFunction = act
            prev.outputs = [int(op.outputs[0])]
            drop.add(i)
            fused += 1
        graph.operators = [op for i, op in enumerate(ops) if i not in drop]
        drop_orphans(graph)
    if not fused:
        return None
    return Step(
        "fuse-activations",
        f"{fused} standalone RELU/RELU6 fused into the op before it (one XNNPACK partition)",
    )


def drop_orphans(graph: Any) -> int:
    """Remove tensors no op reads or writes (renumbering the rest); returns how many."""
    used = sorted(
        {int(t) for op in graph.operators for t in [*op.inputs, *op.outputs] if t >= 0}
        | {int(t) for t in graph.inputs}
        | {int(t) for t in graph.outputs}
    )
    if len(used) == len(graph.tensors):
        return 0
    renumber = {old: new for new, old in enumerate(used)}
    dropped = len(graph.tensors) - len(used)
    graph.tensors = [graph.tensors[t] for t in used]
    for op in graph.operators:
        op.inputs = [renumber[int(t)] if t >= 0 else int(t) for t in op.inputs]
        op.outputs = [renumber[int(t)] for t in op.outputs]
    graph.inputs = [renumber[int(t)] for t in graph.inputs]
    graph.outputs = [renumber[int(t)] for t in graph.outputs]
    return dropped


def _tensor_map(graph: Any, index: int) -> Any:
    entry = _schema().TensorMapT()
    entry.name = tensor_name(graph, index)
    entry.tensorIndex = int(index)
    return entry


def _sync_signatures(model: Any) -> None:
    """Signature entries follow the graph's inputs/outputs by position."""
    for sig in model.signatureDefs or []:
        graph = model.subgraphs[sig.subgraphIndex]
        for entries, tensors in ((sig.inputs, graph.inputs), (sig.outputs, graph.outputs)):
            for entry, t in zip(entries or [], tensors, strict=False):
                entry.tensorIndex = int(t)


def add_signature(model: Any) -> Step | None:
    if model.signatureDefs:
        _sync_signatures(model)
        return None
    graph = model.subgraphs[0]
    signature = _schema().SignatureDefT()
    signature.signatureKey = "serving_default"
    signature.subgraphIndex = 0
    signature.inputs = [_tensor_map(graph, i) for i in graph.inputs]
    signature.outputs = [_tensor_map(graph, i) for i in graph.outputs]
    model.signatureDefs = [signature]
    names = ", ".join(e.name for e in signature.inputs) + " -> " + ", ".join(
        e.name for e in signature.outputs
    )
    return Step("add-signature", f"SignatureDef serving_default added ({names})")


def prepare(data: bytes) -> tuple[bytes, list[Step]]:
    """The float model made ready for ai-edge-quantizer, and the steps that were applied."""
    model = read(data)
    steps = [
        s
        for s in (
            mend_opcodes(model),
            fold_dequantize(model),
            fuse_activations(model),
            add_signature(model),
        )
        if s is not None
    ]
    return (write(model) if steps else data), steps


# -- ranges pinned from the decoder ----------------------------------------------------------
_SHAPE_OPS = {"RESHAPE", "CONCATENATION", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE"}


def range_chain(data: bytes, output_index: int) -> list[str]:
    """Names of output ``output_index`` and of the tensors that only reshape or join into it
    (they must share its range for a quantised CONCATENATION / RESHAPE)."""
    model = read(data)
    graph = model.subgraphs[0]
    producer = {int(t): op for op in graph.operators for t in op.outputs}
    start = int(graph.outputs[output_index])
    seen: list[int] = []
    todo = [start]
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.append(t)
        op = producer.get(t)
        if op is None or op_name(op_code(model, op)) not in _SHAPE_OPS:
            continue
        for i in op.inputs:
            i = int(i)
            tensor = graph.tensors[i] if i >= 0 else None
            if tensor is None or model.buffers[tensor.buffer].data is not None:
                continue  # a constant (shape) operand
            todo.append(i)
    return [tensor_name(graph, t) for t in seen]


# -- the model's interface after quantising --------------------------------------------------
def _dtype(schema: Any, name: str) -> int:
    return int(
        {
            "int8": schema.TensorType.INT8,
            "uint8": schema.TensorType.UINT8,
            "int16": schema.TensorType.INT16,
            "float32": schema.TensorType.FLOAT32,
        }[name]
    )


def _type_name(schema: Any, value: int) -> str:
    for name, v in vars(schema.TensorType).items():
        if not name.startswith("_") and v == value:
            return str(name).lower()
    return str(value)


def _opcode_index(model: Any, code: int) -> int:
    schema = _schema()
    for i, c in enumerate(model.operatorCodes):
        if max(c.builtinCode, c.deprecatedBuiltinCode) == code:
            return i
    entry = schema.OperatorCodeT()
    entry.builtinCode = code
    entry.deprecatedBuiltinCode = min(code, 127)
    entry.version = 1
    model.operatorCodes.append(entry)
    return len(model.operatorCodes) - 1


def _boundary(model: Any, graph: Any, index: int, new_type: int, zero_shift: int) -> int:
    """A new tensor like ``index`` (same name, shape) of ``new_type``; the old one is renamed."""
    import copy

    schema = _schema()
    old = graph.tensors[index]
    new = copy.deepcopy(old)
    new.type = new_type
    model.buffers.append(schema.BufferT())
    new.buffer = len(model.buffers) - 1
    if new_type in (schema.TensorType.FLOAT32,):
        new.quantization = None
    elif zero_shift and old.quantization is not None:
        new.quantization.zeroPoint = [int(z) + zero_shift for z in old.quantization.zeroPoint]
    old.name = (tensor_name(graph, index) + "_int").encode()
    graph.tensors.append(new)
    return len(graph.tensors) - 1


def _add_op(model: Any, graph: Any, code: int, src: int, dst: int) -> None:
    schema = _schema()
    op = schema.OperatorT()
    op.opcodeIndex = _opcode_index(model, code)
    op.inputs = [src]
    op.outputs = [dst]
    graph.operators.append(op)


def set_io_types(data: bytes, input_type: str, output_type: str) -> tuple[bytes, list[Step]]:
    """Give a quantised model's inputs ``input_type`` (int8 | uint8 | float32) and its
    quantised outputs ``output_type`` (int8 | float32): QUANTIZE ops in front of the inputs,
    DEQUANTIZE ops after the outputs. Tensors that already have the type are left alone."""
    schema = _schema()
    model = read(data)
    graph = model.subgraphs[0]
    steps = []
    want_in = _dtype(schema, input_type)
    changed = []
    new_inputs = []
    front = []
    for t in graph.inputs:
        t = int(t)
        have = graph.tensors[t].type
        if have == want_in or have == schema.TensorType.FLOAT32:
            new_inputs.append(t)
            continue
        shift = 128 if (have, want_in) == (schema.TensorType.INT8, schema.TensorType.UINT8) else 0
        if want_in == schema.TensorType.UINT8 and have != schema.TensorType.INT8:
            raise ModelError(f"cannot give the {_type_name(schema, have)} input a uint8 interface")
        new = _boundary(model, graph, t, want_in, shift)
        front.append((new, t))
        new_inputs.append(new)
        changed.append(tensor_name(graph, new))
    before = list(graph.operators)
    graph.operators = []
    for new, t in front:
        _add_op(model, graph, schema.BuiltinOperator.QUANTIZE, new, t)
    graph.operators.extend(before)
    graph.inputs = new_inputs
    if changed:
        steps.append(Step("input-type", f"input {', '.join(changed)} is {input_type} "
                                        "(a QUANTIZE op in front)"))
    want_out = _dtype(schema, output_type)
    new_outputs = []
    changed = []
    for t in graph.outputs:
        t = int(t)
        have = graph.tensors[t].type
        if have == want_out or have == schema.TensorType.FLOAT32:
            new_outputs.append(t)
            continue
        if want_out != schema.TensorType.FLOAT32:
            raise ModelError(f"cannot give the {_type_name(schema, have)} output an "
                             f"{output_type} interface")
        new = _boundary(model, graph, t, want_out, 0)
        _add_op(model, graph, schema.BuiltinOperator.DEQUANTIZE, t, new)
        new_outputs.append(new)
        changed.append(tensor_name(graph, new))
    graph.outputs = new_outputs
    if changed:
        steps.append(Step("output-type", f"output(s) {', '.join(changed)} are {output_type} "
                                         "(DEQUANTIZE ops after them)"))
    if not steps:
        return data, []
    _sync_signatures(model)
    return write(model), steps


def float_ops(data: bytes) -> list[tuple[int, str]]:
    """Ops of a quantised model that still compute in float: ``(position, name)``; the
    QUANTIZE / DEQUANTIZE ops at the model's edges are not counted."""
    schema = _schema()
    model = read(data)
    graph = model.subgraphs[0]
    float_types = {schema.TensorType.FLOAT32, schema.TensorType.FLOAT16}
    edge = {schema.BuiltinOperator.QUANTIZE, schema.BuiltinOperator.DEQUANTIZE}
    out = []
    for n, op in enumerate(graph.operators):
        code = op_code(model, op)
        if code in edge:
            continue
        tensors = [int(t) for t in [*op.inputs, *op.outputs] if t >= 0]
        if any(graph.tensors[t].type in float_types for t in tensors):
            out.append((n, op_name(code)))
    return out


def operator_names(data: bytes) -> list[str]:
    model = read(data)
    return [op_name(op_code(model, op)) for op in model.subgraphs[0].operators]
