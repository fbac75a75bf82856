"""ONNX int8: static QDQ quantization with onnxruntime, after rewriting channel shuffles as Gathers.

Choices, from measurements on ShuffleNet V2 with onnxruntime's CPU provider
(numbers in the README):

* **Channel shuffle as one Gather.**  The exported shuffle is
  Reshape -> Transpose -> Reshape.  onnxruntime runs int8 convolutions in NHWC
  and cannot carry that layout through the 5-D Transpose, so it converts
  layouts around every shuffle; those Transposes took a quarter of the int8
  run time and made int8 ShuffleNet V2 x0.5 *slower* than fp32.  A Gather of the
  channel axis with the same permutation computes identical values and is
  cheap to convert around.
* **QDQ format, uint8 activations, int8 per-channel weights, MinMax ranges.**
  QDQ runs as fast as the QOperator format here and is the format other
  runtimes (XNNPACK, NNAPI, QNN, TensorRT) accept.  int8 activations (S8S8)
  and symmetric activations were slower on x86 with no accuracy gain,
  per-tensor weights lost accuracy, and 7-bit weights (``reduce_range``) and
  Entropy or Percentile calibration were no better than MinMax.
"""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict

import numpy as np

from .base import ExportContext
from .calibration import Calibration

#: Transpose permutation of ShuffleNet's (N, groups, C/groups, H, W) channel shuffle.
SHUFFLE_PERM = [0, 2, 1, 3, 4]
#: Most calibration batches whose every intermediate tensor onnxruntime holds at once.
MAX_CALIB_BATCHES_IN_MEMORY = 16


def quantize_int8(model, ctx: ExportContext, input_name: str):
    """The fp32 (simplified) ``model`` as a static int8 QDQ model, plus what the manifest records about it."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calibration = ctx.calibration
    if calibration is None:  # export() loads it for every target that calibrates
        raise ValueError("int8 ONNX export needs calibration images")
    shuffles = shuffles_to_gather(model)
    work = ctx.staging / "int8-work"
    work.mkdir()
    try:
        onnx.save(model, work / "fp32.onnx")
        # Shape inference + the basic graph optimisations onnxruntime's quantizer expects.
        quant_pre_process(str(work / "fp32.onnx"), str(work / "prepared.onnx"))
        feed = CalibrationFeed(calibration, input_name, _calibration_batch(model, input_name))
        quantize_static(
            str(work / "prepared.onnx"),
            str(work / "int8.onnx"),
            feed,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            # onnxruntime keeps every intermediate tensor of every batch it calibrates on (GBs for 256
            # images at 224px); strides fold each slice into the ranges before the next one runs.
            # (CalibMaxIntermediateOutputs is no substitute: onnxruntime 1.32 drops those batches unused.)
            extra_options={"CalibStridedMinMax": feed.stride(MAX_CALIB_BATCHES_IN_MEMORY)},
        )
        quantized = onnx.load(work / "int8.onnx")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _drop_unused_domains(quantized)
    details = {
        "format": "QDQ",
        "activations": "uint8, per-tensor, asymmetric",
        "weights": "int8, per-channel, symmetric",
        "calibration_method": "MinMax",
        "calibration": calibration.describe(),
        "channel_shuffles_as_gather": shuffles,
        "quantized_ops": quantized_op_counts(quantized),
    }
    return quantized, details


class CalibrationFeed:
    """onnxruntime's ``CalibrationDataReader`` protocol: one input dict per ``get_next`` call, None at
    the end; ``set_range`` and ``len`` let onnxruntime calibrate slice by slice (``CalibStridedMinMax``)."""

    def __init__(self, calibration: Calibration, input_name: str, batch: int | None):
        self.batches = _batches(calibration.tensors, batch)
        self.input_name = input_name
        self.pending = iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.pending = iter(self.batches[start_index:end_index])

    def get_next(self) -> dict | None:
        batch = next(self.pending, None)
        return None if batch is None else {self.input_name: batch}

    def stride(self, most: int) -> int:
        """The largest slice size up to ``most`` that divides the batches evenly (onnxruntime requires that)."""
        return max(size for size in range(1, most + 1) if len(self) % size == 0)


def _batches(tensors: np.ndarray, batch: int | None) -> list[np.ndarray]:
    """Fixed-batch models take exactly ``batch`` inputs: the last chunk repeats its final image
    (MinMax ranges ignore repeats); dynamic-batch models (``None``) get one image per call."""
    size = batch or 1
    chunks = []
    for start in range(0, len(tensors), size):
        chunk = tensors[start : start + size]
        if len(chunk) < size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), axis=0)])
        chunks.append(np.ascontiguousarray(chunk))
    return chunks


def _calibration_batch(model, input_name: str) -> int | None:
    graph_input = next(i for i in model.graph.input if i.name == input_name)
    first = graph_input.type.tensor_type.shape.dim[0]
    return first.dim_value if first.HasField("dim_value") else None


def shuffles_to_gather(model) -> int:
    """Replace every Reshape -> Transpose(0,2,1,3,4) -> Reshape channel shuffle by one Gather on axis 1.

    Works in place and returns how many shuffles were rewritten.  Output
    channel ``j*groups + i`` of a shuffle is input channel ``i*(C/groups) + j``,
    so the Gather's indices are ``arange(C).reshape(groups, C/groups).T``.
    Only exact matches are rewritten: the shuffled tensor must be used by
    nothing else and come back to its original 4-D shape.
    """
    import onnx

    graph = model.graph
    shapes = _static_shapes(onnx.shape_inference.infer_shapes(model))
    producers = {output: node for node in graph.node for output in node.output}
    users = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            users[name].append(node)
    for output in graph.output:
        users[output.name].append(None)  # a graph output must keep its producer
    replacements = {}  # first output name of a node -> the node replacing it (None: removed)
    for transpose in graph.node:
        match = _shuffle_around(transpose, producers, users, shapes)
        if match is None:
            continue
        reshape_in, reshape_out, groups = match
        source = reshape_in.input[0]
        indices_name = f"{transpose.name or transpose.output[0]}_channel_order"
        channels = shapes[source][1]
        order = np.arange(channels, dtype=np.int64).reshape(groups, channels // groups).T.ravel()
        graph.initializer.append(onnx.numpy_helper.from_array(order, indices_name))
        gather = onnx.helper.make_node("Gather", [source, indices_name], [reshape_out.output[0]],
                                       name=f"{indices_name}_gather", axis=1)  # fmt: skip
        replacements[reshape_out.output[0]] = gather
        replacements[reshape_in.output[0]] = replacements[transpose.output[0]] = None
    if not replacements:
        return 0
    _replace_nodes(graph, [replacements.get(node.output[0], node) for node in graph.node])
    _drop_unused(graph)
    return sum(node is not None for node in replacements.values())


def _replace_nodes(graph, nodes: list) -> None:
    """Make ``nodes`` (None entries dropped) the graph's node list; copies first, as clearing the
    repeated field would otherwise invalidate the very messages being put back."""
    copies = []
    for node in nodes:
        if node is not None:
            copy = type(node)()
            copy.CopyFrom(node)
            copies.append(copy)
    del graph.node[:]
    graph.node.extend(copies)


def _shuffle_around(transpose, producers, users, shapes):
    """(first Reshape, last Reshape, groups) when ``transpose`` is the middle of a channel shuffle, else None."""
    if transpose.op_type != "Transpose" or _perm(transpose) != SHUFFLE_PERM:
        return None
    reshape_in = producers.get(transpose.input[0])
    after = users[transpose.output[0]]
    if reshape_in is None or reshape_in.op_type != "Reshape" or len(users[reshape_in.output[0]]) != 1:
        return None
    if len(after) != 1 or after[0] is None or after[0].op_type != "Reshape":
        return None
    reshape_out = after[0]
    source, five_d, result = (shapes.get(n) for n in (reshape_in.input[0], transpose.input[0], reshape_out.output[0]))
    if not (source and five_d and result) or len(source) != 4 or len(five_d) != 5:
        return None
    groups, per_group = five_d[1], five_d[2]
    same_layout = source[1:] == result[1:] and five_d[3:] == source[2:] and source[1] == groups * per_group
    if not same_layout or 0 in (groups, per_group):
        return None
    return reshape_in, reshape_out, groups


def _perm(node) -> list[int] | None:
    return next((list(a.ints) for a in node.attribute if a.name == "perm"), None)


def _static_shapes(model) -> dict[str, list[int]]:
    """Tensor name -> dims, with 0 for a dimension that is not a fixed number (e.g. a dynamic batch)."""
    values = [*model.graph.value_info, *model.graph.input, *model.graph.output]
    return {
        v.name: [d.dim_value if d.HasField("dim_value") else 0 for d in v.type.tensor_type.shape.dim] for v in values
    }


def _drop_unused(graph) -> None:
    """Remove nodes and initializers nothing reads any more (the shuffles' shape computations)."""
    needed = {output.name for output in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(output in needed for output in node.output):
            kept.append(node)
            needed.update(node.input)
    _replace_nodes(graph, kept[::-1])
    unused = [init for init in graph.initializer if init.name not in needed]
    for init in unused:
        graph.initializer.remove(init)


def _drop_unused_domains(model) -> None:
    """Keep only the opset imports the graph uses: onnxruntime's optimizer declares all of its own
    (training, nchwc, aten ...), which runtimes without those domains may refuse."""
    used = {node.domain for node in model.graph.node}
    kept = [opset for opset in model.opset_import if opset.domain in used or opset.domain in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.extend(kept)


def quantized_op_counts(model) -> dict[str, int]:
    """How many of each quantization-related node the int8 graph holds (QuantizeLinear, DequantizeLinear, ...)."""
    counts = Counter(node.op_type for node in model.graph.node)
    return {op: n for op, n in sorted(counts.items()) if "quantize" in op.lower() or op.startswith("QLinear")}
