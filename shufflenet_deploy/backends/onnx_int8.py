"""ONNX int8: static QDQ quantization with onnxruntime, after folding the channel shuffles into the weights.

Choices, from measurements on ShuffleNet V2 with onnxruntime's CPU provider and
cross-checks in OpenVINO, OpenCV DNN and tract (numbers in the README):

* **No channel shuffle left in the graph.**  The exported shuffle is
  Reshape -> Transpose -> Reshape.  onnxruntime runs int8 convolutions in NHWC
  and cannot carry that layout through the 5-D Transpose, so it converts
  layouts around every shuffle, which made int8 ShuffleNet V2 x0.5 *slower*
  than fp32.  A shuffle only moves channels, so :func:`fold_channel_shuffles`
  removes it: the convolutions that read the moved channels take them in
  another order (their weights are permuted to match), and each unit reads
  contiguous pieces through ``Split`` and ``Concat``, which onnxruntime keeps
  in NHWC.  (Writing the shuffle as one constant ``Gather`` was as fast in
  onnxruntime, but OpenVINO 2026.4 applies the inverse permutation when such a
  Gather feeds a dense Conv and returns wrong results without an error.)
* **GlobalAveragePool for the final mean**, which onnxruntime runs on int8 in
  NHWC (``ReduceMean`` is dequantized, transposed and requantized).  The
  classifier's output stays quantized: OpenCV 5.0's default DNN engine then
  refuses the model at load time, and should, because its int8 1x1
  convolution returns wrong values whenever H*W is not a multiple of 8 (its
  ``ENGINE_CLASSIC`` runs the model correctly).
* **The 3-channel input padded to 4 channels** (a channel of zeros, added to
  the quantized input as its zero point; the first convolution gets zero
  weights for it).
  onnxruntime's fast int8 convolution kernels need a multiple of 4 input
  channels; with 3, the first convolution took a quarter of the int8 run time.
* **One range for all tensors joined by Concat and Split**, so onnxruntime's
  QLinearConcat copies instead of requantizing every byte.  Held-out accuracy
  of the digits model is unchanged.
* **QDQ format, uint8 activations, int8 per-channel weights, MinMax ranges.**
  QDQ runs as fast as the QOperator format here and is the format other
  runtimes (XNNPACK, NNAPI, QNN, TensorRT) accept.  int8 activations (S8S8)
  and symmetric activations were slower on x86 with no accuracy gain,
  per-tensor weights lost accuracy, and 7-bit weights (``reduce_range``) and
  Entropy or Percentile calibration were no better than MinMax.
"""

from __future__ import annotations

import itertools
import shutil
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..modelio import to_model_input
from .base import ExportContext
from .calibration import Calibration, fixed_batches

#: Transpose permutation of ShuffleNet's (N, groups, C/groups, H, W) channel shuffle.
SHUFFLE_PERM = [0, 2, 1, 3, 4]
#: Most calibration batches whose every intermediate tensor onnxruntime holds at once.
MAX_CALIB_BATCHES_IN_MEMORY = 16


def quantize_int8(model, ctx: ExportContext, input_name: str):
    """The fp32 (simplified) ``model`` as a static int8 QDQ model, plus what the manifest records about it."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if ctx.calibration is None:  # export() loads it for every target that calibrates
        raise ValueError("int8 ONNX export needs calibration images")
    # The images go in as the artifact takes them (8-bit pixels, NHWC...), like every other input.
    calibration = replace(ctx.calibration, tensors=to_model_input(ctx.calibration.tensors, ctx.contract, ctx.io))
    folded = fold_channel_shuffles(model)
    pools = means_to_global_pool(model)
    pads = pad_input_channels(model)
    work = ctx.staging / "int8-work"
    work.mkdir()
    try:
        onnx.save(model, work / "fp32.onnx")
        # Shape inference + the basic graph optimisations onnxruntime's quantizer expects.
        quant_pre_process(str(work / "fp32.onnx"), str(work / "prepared.onnx"))
        feed = CalibrationFeed(calibration, input_name, _calibration_batch(model, input_name))
        shared = shared_ranges(work / "prepared.onnx", feed)
        quantize_static(
            str(work / "prepared.onnx"),
            str(work / "int8.onnx"),
            feed,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=pads,  # the padding stays fp32, ahead of the input's QuantizeLinear
            extra_options={
                # onnxruntime keeps every intermediate tensor of every batch it calibrates on (GBs for 256
                # images at 224px); strides fold each slice into the ranges before the next one runs.
                # (CalibMaxIntermediateOutputs is no substitute: onnxruntime 1.32 drops those batches unused.)
                "CalibStridedMinMax": feed.stride(MAX_CALIB_BATCHES_IN_MEMORY),
                "TensorQuantOverrides": shared,
            },
        )
        quantized = onnx.load(work / "int8.onnx")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _quantize_before_padding(quantized, pads)
    _drop_unused_domains(quantized)
    details = {
        "format": "QDQ",
        "activations": "uint8, per-tensor, asymmetric",
        "weights": "int8, per-channel, symmetric",
        "calibration_method": "MinMax",
        "calibration": calibration.describe(),
        "channel_shuffles_folded": folded,
        "global_average_pools": pools,
        "input_channels_padded": len(pads),
        "tensors_sharing_ranges": len(shared),
        "quantized_ops": quantized_op_counts(quantized),
    }
    return quantized, details


class CalibrationFeed:
    """onnxruntime's ``CalibrationDataReader`` protocol: one input dict per ``get_next`` call, None at
    the end; ``set_range`` and ``len`` let onnxruntime calibrate slice by slice (``CalibStridedMinMax``).
    Iterating yields every input dict once more, from the start (for :func:`shared_ranges`)."""

    def __init__(self, calibration: Calibration, input_name: str, batch: int | None):
        self.batches = fixed_batches(calibration.tensors, batch)
        self.input_name = input_name
        self.pending = iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.pending = iter(self.batches[start_index:end_index])

    def __iter__(self):
        return ({self.input_name: batch} for batch in self.batches)

    def get_next(self) -> dict | None:
        batch = next(self.pending, None)
        return None if batch is None else {self.input_name: batch}

    def stride(self, most: int) -> int:
        """The largest slice size up to ``most`` that divides the batches evenly (onnxruntime requires that)."""
        return max(size for size in range(1, most + 1) if len(self) % size == 0)


def _calibration_batch(model, input_name: str) -> int | None:
    graph_input = next(i for i in model.graph.input if i.name == input_name)
    first = graph_input.type.tensor_type.shape.dim[0]
    return first.dim_value if first.HasField("dim_value") else None


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
    stale = [info for info in graph.value_info if info.name not in needed]  # shapes of tensors now gone
    for info in stale:
        graph.value_info.remove(info)


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


# ---------------------------------------------------------------- folding channel shuffles away

#: Ops applied to each channel on its own: a permutation of their input channels permutes their output
#: channels the same way (a depthwise Conv and ReduceMean over H/W are recognised separately).
_PER_CHANNEL_OPS = {"Relu", "Clip", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}


def fold_channel_shuffles(model) -> int:
    """Remove every channel shuffle (and the Splits after them) by permuting convolution weights; returns how
    many shuffles went, 0 when the graph is left exactly as it was.

    Channel shuffles, Splits and Concats on the channel axis only move channels.  This pass follows each
    channel of the graph back to the tensor that computed it (a convolution, the input...), deletes the
    moving ops, and rebuilds each input of the remaining nodes from those tensors with contiguous
    ``Split``/``Slice`` pieces and at most one ``Concat``, in whatever channel order is cheapest:

    * a dense Conv (group 1), Gemm or MatMul takes its input channels in any order: their weights'
      input axis is permuted to match;
    * per-channel ops (Relu, pooling, depthwise Conv, ReduceMean over H/W) pass the order on, with their
      per-channel weights permuted;
    * a dense Conv may write its output channels in any order (weights and bias permuted by output
      channel): it writes them grouped by the node that reads them next, so each reader takes one
      contiguous piece.

    A ShuffleNet V2 unit then runs its branch on ``Concat(piece of the identity half, piece of the last
    branch output)`` and no channel is moved more than twice.  The result computes the same function;
    values differ only by float summation order in the permuted dense layers.  Any other node that
    would need channels moved (e.g. ShuffleNet V1's grouped 1x1 convolution after its shuffle) makes
    the pass give up and leave the graph unchanged.
    """
    import onnx

    graph = model.graph
    shapes = _static_shapes(onnx.shape_inference.infer_shapes(model))
    inits = {init.name: init for init in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    users = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            users[name].append(node)
    for output in graph.output:
        users[output.name].append(None)

    # 1. Where every channel of every moved tensor comes from: tensor -> [(source tensor, channel)].
    shuffles = {}  # last Reshape of a shuffle -> (source tensor, groups)
    skipped = set()  # ids of the first Reshape and the Transpose of each shuffle
    for transpose in graph.node:
        match = _shuffle_around(transpose, producers, users, shapes)
        if match is not None:
            reshape_in, reshape_out, groups = match
            shuffles[id(reshape_out)] = (reshape_in.input[0], groups)
            skipped.update((id(reshape_in), id(transpose)))
    if not shuffles:
        return 0
    origin: dict[str, list[tuple[str, int]]] = {}
    moving = set()  # ids of the nodes that only move channels

    def channels_of(name: str) -> list[tuple[str, int]] | None:
        if name in origin:
            return origin[name]
        shape = shapes.get(name)
        if not shape or len(shape) < 2 or not shape[1] or name in inits:
            return None
        return [(name, c) for c in range(shape[1])]

    for node in graph.node:
        if id(node) in skipped:
            moving.add(id(node))
            continue
        moved = _moved_channels(node, channels_of, shuffles, inits)
        if moved is not None:
            moving.add(id(node))
            origin.update(zip(node.output, moved))
    if any(output.name in origin for output in graph.output):
        return 0
    live = _live_nodes(graph, producers, moving, shuffles)

    # 2. Which reader takes each computed channel: (tensor, channel) -> reader numbers, in graph order.
    #    Readers that take the same channels share one rebuilt tensor.
    reads, readers = defaultdict(set), {}
    for node in graph.node:
        if id(node) in live and id(node) not in moving:
            for name in node.input:
                if name in origin:
                    reader = readers.setdefault(tuple(origin[name]), len(readers))
                    for source in origin[name]:
                        reads[source].add(reader)

    # 3. Walk the graph in order, choosing channel orders and rebuilding inputs.
    order: dict[str, np.ndarray] = {}  # computed tensor -> stored position k holds its channel order[k]
    new_inits: dict[str, np.ndarray] = {}
    pieces = defaultdict(set)  # computed tensor -> {(start, stop)} of its stored channels read as one piece
    rebuilt: dict[tuple, tuple[str, list[int]]] = {}  # wanted channels -> (tensor name, reader channel order)
    concats = []
    nodes = []

    def stored_order(name: str) -> np.ndarray:
        return order.get(name, np.arange(shapes[name][1]))

    def rebuild(name: str) -> tuple[str, list[int]]:
        """The input ``name`` as one tensor of its channels in a cheap order: (tensor, which channel of
        ``name`` each position holds)."""
        wanted = channels_of(name)
        key = tuple(wanted)
        if key in rebuilt:
            return rebuilt[key]
        first_seen = {}
        for source, _ in wanted:
            first_seen.setdefault(source, len(first_seen))
        position = {source: np.argsort(stored_order(source)) for source in first_seen}
        ranked = sorted(
            range(len(wanted)), key=lambda i: (first_seen[wanted[i][0]], position[wanted[i][0]][wanted[i][1]])
        )
        runs = []  # [source, start, stop] over stored positions
        for i in ranked:
            source, stored = wanted[i][0], int(position[wanted[i][0]][wanted[i][1]])
            if runs and runs[-1][0] == source and runs[-1][2] == stored:
                runs[-1][2] += 1
            else:
                runs.append([source, stored, stored + 1])
        parts = []
        for source, start, stop in runs:
            if (start, stop) == (0, shapes[source][1]):
                parts.append(source)
            else:
                pieces[source].add((start, stop))
                parts.append(_piece_name(source, start, stop))
        if len(parts) == 1:
            result = parts[0]
        else:
            result = f"{name}_folded"
            concats.append(onnx.helper.make_node("Concat", parts, [result], name=f"{result}_concat", axis=1))
        rebuilt[key] = (result, ranked)
        return rebuilt[key]

    def weight(name: str) -> np.ndarray:
        return new_inits[name] if name in new_inits else onnx.numpy_helper.to_array(inits[name])

    def set_weight(node, index: int, value: np.ndarray) -> None:
        name = node.input[index]
        if len(users[name]) != 1:  # shared: give this node its own copy
            name = f"{node.name or node.output[0]}_{name}_folded"
            node.input[index] = name
            users[name] = [node]
        new_inits[name] = value

    for original in graph.node:
        if id(original) in moving or id(original) not in live:
            continue
        node = type(original)()
        node.CopyFrom(original)
        nodes.append(node)
        kind = _channel_role(node, shapes, inits)
        data = node.input[0] if node.input else None
        if kind is None:
            if any(name in origin or name in order for name in node.input):
                return 0  # a node that needs its channels in their original order
            continue
        if any(name in origin or name in order for name in node.input[1:]):
            return 0
        if data in origin or data in order:
            node.input[0], reader_order = rebuild(data)
            reader_order = np.asarray(reader_order)
        else:
            reader_order = None
        if kind == "dense":  # weights: Conv (out, in, kh, kw); Gemm (out, in) with transB=1 else (in, out)
            if reader_order is not None:
                axis = 0 if node.op_type == "MatMul" or (node.op_type == "Gemm" and not _attr(node, "transB", 0)) else 1
                set_weight(node, 1, np.take(weight(node.input[1]), reader_order, axis=axis))
            if node.op_type == "Conv":
                chosen = _grouped_by_reader(node.output[0], shapes, reads, users)
                if chosen is not None:
                    set_weight(node, 1, weight(node.input[1])[chosen])
                    if len(node.input) > 2 and node.input[2]:
                        set_weight(node, 2, weight(node.input[2])[chosen])
                    order[node.output[0]] = chosen
        elif kind == "per_channel":
            source_order = reader_order if reader_order is not None else order.get(data)
            if source_order is None:
                continue
            if node.op_type == "Conv":  # depthwise
                set_weight(node, 1, weight(node.input[1])[source_order])
                if len(node.input) > 2 and node.input[2]:
                    set_weight(node, 2, weight(node.input[2])[source_order])
            order[node.output[0]] = source_order
    if any(output.name in order and not np.array_equal(order[output.name], np.arange(len(order[output.name])))
           for output in graph.output):  # fmt: skip
        return 0

    # 4. Cut the pieces: one Split where they tile a tensor, else one Slice each.
    for source, spans in pieces.items():
        spans = sorted(spans)
        bounds = [start for start, _ in spans] + [spans[-1][1]]
        tiles = (
            bounds[0] == 0
            and bounds[-1] == shapes[source][1]
            and all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        )
        if tiles:
            sizes = f"{source}_piece_sizes"
            new_inits[sizes] = np.array([stop - start for start, stop in spans], np.int64)
            nodes.append(onnx.helper.make_node("Split", [source, sizes], [_piece_name(source, *s) for s in spans],
                                               name=f"{source}_pieces", axis=1))  # fmt: skip
            continue
        for start, stop in spans:
            prefix = _piece_name(source, start, stop)
            for suffix, value in (("starts", start), ("ends", stop), ("axes", 1)):
                new_inits[f"{prefix}_{suffix}"] = np.array([value], np.int64)
            nodes.append(onnx.helper.make_node("Slice", [source] + [f"{prefix}_{s}" for s in ("starts", "ends", "axes")],
                                               [prefix], name=f"{prefix}_slice"))  # fmt: skip
    nodes.extend(concats)

    for name, value in new_inits.items():
        if name in inits:
            inits[name].CopyFrom(onnx.numpy_helper.from_array(value, name))
        else:
            graph.initializer.append(onnx.numpy_helper.from_array(value, name))
    _replace_nodes(graph, _topological(nodes, {i.name for i in graph.input} | {i.name for i in graph.initializer}))
    _drop_unused(graph)
    return len(shuffles)


def _piece_name(source: str, start: int, stop: int) -> str:
    return f"{source}_ch{start}_{stop}"


def _attr(node, name: str, default=None):
    import onnx

    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _moved_channels(node, channels_of, shuffles, inits) -> list | None:
    """For a node that only moves channels (channel-axis Concat/Split/Gather, Identity, a shuffle's last
    Reshape): the channel origins of each output.  None for any other node."""
    if id(node) in shuffles:
        source, groups = shuffles[id(node)]
        channels = channels_of(source)
        if channels is None:
            return None
        per_group = len(channels) // groups
        return [[channels[i * per_group + j] for j in range(per_group) for i in range(groups)]]
    inputs = [channels_of(name) for name in node.input[:1]]
    if not inputs or inputs[0] is None:
        return None
    if node.op_type == "Identity":
        return inputs
    if node.op_type == "Concat" and _attr(node, "axis") == 1:
        parts = [channels_of(name) for name in node.input]
        return None if any(p is None for p in parts) else [[c for p in parts for c in p]]
    if node.op_type == "Split" and _attr(node, "axis", 0) == 1:
        channels = inputs[0]
        if len(node.input) > 1 and node.input[1]:
            if node.input[1] not in inits:
                return None
            import onnx

            sizes = [int(s) for s in onnx.numpy_helper.to_array(inits[node.input[1]])]
        else:
            count = len(node.output)
            if len(channels) % count:
                return None
            sizes = [len(channels) // count] * count
        if sum(sizes) != len(channels):
            return None
        starts = np.cumsum([0, *sizes])
        return [channels[a:b] for a, b in itertools.pairwise(starts)]
    if node.op_type == "Gather" and _attr(node, "axis", 0) == 1 and node.input[1] in inits:
        import onnx

        indices = onnx.numpy_helper.to_array(inits[node.input[1]])
        if indices.ndim != 1:
            return None
        return [[inputs[0][int(i)] for i in indices]]
    return None


def _channel_role(node, shapes, inits) -> str | None:
    """'dense': takes its input channels in any order (weights permuted to match) -- Conv with one group,
    Gemm, MatMul by a constant; 'per_channel': output channel c depends on input channel c only; None: other."""
    if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in inits:
        dims = list(inits[node.input[1]].dims)
        group = _attr(node, "group", 1)
        if group == 1:
            return "dense"
        if dims[0] == group and dims[1] == 1:  # depthwise, one filter per channel
            return "per_channel"
        return None
    if node.op_type == "Gemm" and node.input[1] in inits and not _attr(node, "transA", 0):
        return "dense"
    if node.op_type == "MatMul" and node.input[1] in inits and len(inits[node.input[1]].dims) == 2:
        return "dense" if len(shapes.get(node.input[0], [])) == 2 else None
    if node.op_type in _PER_CHANNEL_OPS:
        return "per_channel" if len(node.output) == 1 else None  # MaxPool's indices count channels
    if node.op_type in ("ReduceMean", "ReduceMax") and len(node.input) > 1 and node.input[1] in inits:
        import onnx

        axes = {int(a) for a in onnx.numpy_helper.to_array(inits[node.input[1]]).ravel()}
        rank = len(shapes.get(node.input[0], []))
        return (
            "per_channel"
            if rank and 1 not in axes and 0 not in axes and 1 - rank not in axes and -rank not in axes
            else None
        )
    return None


def _grouped_by_reader(name: str, shapes, reads, users) -> np.ndarray | None:
    """Output channel order for the dense Conv writing ``name``: channels read by the same rebuilt input
    next to each other (in the order readers come), each group in channel order.  Looks through the
    per-channel ops (Relu...) between the Conv and the moves.  None when no reader needs a piece."""
    channels = shapes[name][1]
    names, frontier = [name], [name]
    while frontier:  # tensors carrying the same channels: the output and per-channel ops applied to it
        current = frontier.pop()
        for user in users.get(current, []):
            if user is not None and user.op_type in _PER_CHANNEL_OPS and user.input[0] == current:
                names.append(user.output[0])
                frontier.append(user.output[0])
    signature = [tuple(sorted(k for n in names for k in reads.get((n, c), ()))) for c in range(channels)]
    if len(set(signature)) <= 1:
        return None
    return np.array(sorted(range(channels), key=lambda c: (signature[c], c)), np.int64)


def _live_nodes(graph, producers, moving, shuffles) -> set[int]:
    """ids of the nodes the graph outputs still need once moves are gone: a move needs only the
    tensors whose channels it moves (not, e.g., the Shape ops that computed a shuffle's Reshape sizes)."""
    live, pending = set(), [output.name for output in graph.output]
    while pending:
        node = producers.get(pending.pop())
        if node is None or id(node) in live:
            continue
        live.add(id(node))
        if id(node) in shuffles:
            pending.append(shuffles[id(node)][0])
        elif id(node) in moving:
            pending.extend(node.input if node.op_type == "Concat" else node.input[:1])
        else:
            pending.extend(node.input)
    return live


def _topological(nodes: list, available: set[str]) -> list:
    """``nodes`` reordered so that every node comes after the producers of its inputs, otherwise keeping
    their order (Kahn's algorithm, taking the earliest ready node first)."""
    import heapq

    producer = {output: index for index, node in enumerate(nodes) for output in node.output}
    waiting = [0] * len(nodes)
    dependents = defaultdict(list)
    for index, node in enumerate(nodes):
        for name in node.input:
            if name and name not in available and name in producer:
                waiting[index] += 1
                dependents[producer[name]].append(index)
    ready = [index for index, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        index = heapq.heappop(ready)
        ordered.append(nodes[index])
        for dependent in dependents[index]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, dependent)
    if len(ordered) != len(nodes):
        raise ValueError("folding channel shuffles left a cycle in the graph")
    return ordered


# ---------------------------------------------------------------- the final mean


def means_to_global_pool(model) -> int:
    """Rewrite each ReduceMean over H and W of a 4-D tensor as GlobalAveragePool (+ Flatten when the mean
    drops those axes); returns how many.  Same values; onnxruntime runs GlobalAveragePool on int8 in NHWC
    (QLinearGlobalAveragePool), where a quantized ReduceMean is dequantized and transposed first."""
    import onnx

    graph = model.graph
    shapes = _static_shapes(onnx.shape_inference.infer_shapes(model))
    inits = {init.name: init for init in graph.initializer}
    nodes, count = [], 0
    for node in graph.node:
        rank = len(shapes.get(node.input[0], [])) if node.input else 0
        if node.op_type != "ReduceMean" or rank != 4:
            nodes.append(node)
            continue
        if len(node.input) > 1 and node.input[1]:
            axes = onnx.numpy_helper.to_array(inits[node.input[1]]) if node.input[1] in inits else None
        else:
            axes = _attr(node, "axes")
        if axes is None or sorted(int(a) % 4 for a in np.ravel(axes)) != [2, 3]:
            nodes.append(node)
            continue
        output = node.output[0]
        if _attr(node, "keepdims", 1):
            nodes.append(
                onnx.helper.make_node("GlobalAveragePool", [node.input[0]], [output], name=f"{node.name}_pool")
            )
        else:
            pooled = f"{output}_pooled"
            nodes.append(
                onnx.helper.make_node("GlobalAveragePool", [node.input[0]], [pooled], name=f"{node.name}_pool")
            )
            nodes.append(onnx.helper.make_node("Flatten", [pooled], [output], name=f"{node.name}_flatten", axis=1))
        count += 1
    if count:
        _replace_nodes(graph, nodes)
        _drop_unused(graph)
    return count


# ---------------------------------------------------------------- input padding and shared ranges

#: onnxruntime's symmetric int8 convolution kernels (MlasConvSym) need input channels in multiples of this.
CHANNEL_MULTIPLE = 4


def pad_input_channels(model, multiple: int = CHANNEL_MULTIPLE) -> list[str]:
    """Pad a graph input that feeds dense Convs only to a multiple of ``multiple`` channels with zeros (one
    Pad node), giving those Convs zero weights for the new channels; returns the names of the Pad nodes.
    Same values: the extra channels are zero and weighted by zero."""
    import onnx

    graph = model.graph
    shapes = _static_shapes(onnx.shape_inference.infer_shapes(model))
    inits = {init.name: init for init in graph.initializer}
    users = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            users[name].append(node)
    pads, added = [], []
    for graph_input in graph.input:
        shape, readers = shapes.get(graph_input.name), users.get(graph_input.name, [])
        if not shape or len(shape) != 4 or not shape[1] or shape[1] % multiple == 0 or not readers:
            continue
        dense = all(n.op_type == "Conv" and _attr(n, "group", 1) == 1 and n.input[0] == graph_input.name
                    and n.input[1] in inits and len(users[n.input[1]]) == 1 for n in readers)  # fmt: skip
        if not dense:
            continue
        extra = -shape[1] % multiple
        padded, amounts = f"{graph_input.name}_padded", f"{graph_input.name}_channel_pads"
        graph.initializer.append(
            onnx.numpy_helper.from_array(np.array([0, 0, 0, 0, 0, extra, 0, 0], np.int64), amounts)
        )
        pads.append(onnx.helper.make_node("Pad", [graph_input.name, amounts], [padded], name=f"{padded}_pad"))
        for conv in readers:
            weight = onnx.numpy_helper.to_array(inits[conv.input[1]])
            widths = [(0, 0), (0, extra)] + [(0, 0)] * (weight.ndim - 2)
            inits[conv.input[1]].CopyFrom(onnx.numpy_helper.from_array(np.pad(weight, widths), conv.input[1]))
            conv.input[0] = padded
        added.append(pads[-1].name)
    if pads:
        _replace_nodes(graph, pads + list(graph.node))
    return added


def shared_ranges(model_path: Path, feed: CalibrationFeed) -> dict[str, list[dict]]:
    """``TensorQuantOverrides`` giving every tensor joined through Concat or Split nodes the min/max range of
    its whole group, measured on the calibration batches.  onnxruntime then runs each such Concat as a
    copy (same scale and zero point on every input and the output) instead of requantizing its inputs."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(model_path)
    constants = {init.name for init in model.graph.initializer}
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    for node in model.graph.node:
        if node.op_type in ("Concat", "Split"):
            joined = [name for name in [node.input[0], *node.output] if name] if node.op_type == "Split" else [
                name for name in [*node.input, node.output[0]] if name]  # fmt: skip
            joined = [name for name in joined if name not in constants]
            for name in joined[1:]:
                parent[root(name)] = root(joined[0])
    if not parent:
        return {}
    outputs = {output.name for output in model.graph.output}
    for name in parent:
        if name not in outputs:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # graph outputs survive onnxruntime's fusions: the ranges are of these tensors
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    low, high = defaultdict(lambda: np.inf), defaultdict(lambda: -np.inf)
    for inputs in feed:
        for name, value in zip(names, session.run(names, inputs)):
            if name in parent:
                group = root(name)
                low[group], high[group] = min(low[group], float(value.min())), max(high[group], float(value.max()))
    return {name: [{"rmin": np.float32(low[root(name)]), "rmax": np.float32(high[root(name)])}] for name in parent}


def _quantize_before_padding(model, pad_names: list[str]) -> None:
    """Swap each fp32 input Pad (from :func:`pad_input_channels`) with the QuantizeLinear after it: the uint8
    input is padded with its zero point.  Q(Pad(x, 0)) == Pad(Q(x), Q(0)) exactly, and a quarter of the bytes
    are copied."""
    import onnx

    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    nodes = list(graph.node)
    for pad in [node for node in nodes if node.op_type == "Pad" and node.name in pad_names]:
        readers = [node for node in nodes if pad.output[0] in node.input]
        if len(readers) != 1 or readers[0].op_type != "QuantizeLinear" or len(pad.input) > 2:
            continue
        quantize = readers[0]
        if len(quantize.input) < 3 or quantize.input[2] not in inits or inits[quantize.input[1]].dims:
            continue  # per-tensor parameters with an explicit zero point only
        quantized = f"{pad.input[0]}_quantized"
        first = onnx.helper.make_node("QuantizeLinear", [pad.input[0], *quantize.input[1:]], [quantized],
                                      name=f"{quantized}_quantize")  # fmt: skip
        first.attribute.extend(quantize.attribute)
        padding = onnx.helper.make_node("Pad", [quantized, pad.input[1], quantize.input[2]], [quantize.output[0]],
                                        name=pad.name)  # fmt: skip
        position = nodes.index(pad)
        nodes = [node for node in nodes if node is not pad and node is not quantize]
        nodes[position:position] = [first, padding]
    _replace_nodes(graph, nodes)
