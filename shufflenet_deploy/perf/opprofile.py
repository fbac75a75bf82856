"""``profile_arch()``: where the time of one network goes, by op kind, next to where its FLOPs and MAC go.

The network is exported to fp32 ONNX and run under onnxruntime's profiler.
Each profiled node is classified by inspecting the ONNX graph (a Conv's
``group`` attribute and weight shape tell dense, grouped and depthwise
convolutions apart), then node times are summed per kind:

=================  ==========================================================
kind               ONNX nodes
=================  ==========================================================
stem_conv          dense k x k Conv (the 3x3 stem)
conv1x1            dense 1x1 Conv
group_conv1x1      grouped 1x1 Conv (ShuffleNet V1)
depthwise_conv     depthwise Conv
shuffle            Reshape, Transpose, Concat, Split, Slice, Gather... (channel
                   shuffle, channel split and concatenation)
pooling            MaxPool, AveragePool
classifier         global pooling (ReduceMean / GlobalAveragePool) and Gemm / MatMul
other              everything else (ReLU, Add...)
=================  ==========================================================

FLOPs and MAC shares come from :mod:`.complexity` for conv and linear layers
(mapped to the same kinds by ``conv_kind``), so FLOP shares add up to the
arch's MFLOPs exactly.  Data-movement, pooling and element-wise nodes have no
FLOPs by the papers' count but do move memory: their MAC is the float
elements they read plus those they write, from the ONNX graph's inferred
shapes, as if every node materialised its output (onnxruntime may alias a
Reshape, which is why such nodes take so little time despite their MAC).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .bench import check_run_counts
from ..complexity import LayerCost, layer_costs
from ..backends.onnx import BACKEND as ONNX
from ..errors import SdeployError, require_modules
from ..export import export
from ..manifest import manifest_contract
from ..nets import get_arch
from ..preprocess import check_img_size, random_inputs
from ..progress import Task, status

KIND_LABELS = {
    "stem_conv": "stem conv (dense 3x3)",
    "conv1x1": "1x1 conv, dense",
    "group_conv1x1": "1x1 conv, grouped",
    "depthwise_conv": "depthwise 3x3 conv",
    "shuffle": "shuffle/split/concat",
    "pooling": "max/avg pooling",
    "classifier": "global pool + FC",
    "other": "other (ReLU, Add)",
}
#: complexity.py layer kinds -> profile kinds.
LAYER_KINDS = {"conv": "stem_conv", "conv1x1": "conv1x1", "group_conv1x1": "group_conv1x1",
               "depthwise_conv": "depthwise_conv", "linear": "classifier"}  # fmt: skip
DATA_MOVEMENT_OPS = {"Reshape", "Transpose", "Concat", "Split", "Slice", "Gather", "Flatten", "Squeeze", "Unsqueeze",
                     "Identity", "Expand", "Tile"}  # fmt: skip
POOLING_OPS = {"MaxPool", "AveragePool"}
CLASSIFIER_OPS = {"GlobalAveragePool", "ReduceMean", "Gemm", "MatMul"}
#: Ops whose FLOPs and MAC come from complexity.py rather than from the graph.
COMPUTE_OPS = {"Conv", "FusedConv", "Gemm", "MatMul"}
#: Only the basic level keeps every node of the file, under its own name (see _profile_session).
PROFILED_OPTIMIZATION = "ORT_ENABLE_BASIC"
DEFAULT_RUNS = 20
DEFAULT_WARMUP = 3


@dataclass
class KindCost:
    kind: str
    label: str
    nodes: int
    ms: float
    time_share: float  # percent of the summed node times
    mflops: float
    flops_share: float  # percent of the arch's MFLOPs
    mac_m: float  # million elements
    mac_share: float  # percent of the total MAC


@dataclass
class OpProfile:
    arch: str
    img_size: int
    threads: int
    runs: int
    warmup: int
    weights: str
    onnxruntime: str
    optimization: str
    node_ms: float  # sum of the nodes' median kernel times per inference: the base of time_share
    run_ms: float  # median end-to-end run of the profiled session
    default_run_ms: float  # median run of an unprofiled session at onnxruntime's default ORT_ENABLE_ALL
    mflops: float
    mac_m: float
    kinds: list[KindCost] = field(default_factory=list)

    def kind(self, name: str) -> KindCost:
        return next(k for k in self.kinds if k.kind == name)

    def to_dict(self) -> dict:
        return asdict(self)


def profile_arch(
    arch: str,
    *,
    img_size: int = 224,
    runs: int = DEFAULT_RUNS,
    warmup: int = DEFAULT_WARMUP,
    threads: int = 1,
    weights: str | Path = "random",
    num_classes: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> OpProfile:
    """Export ``arch`` to fp32 ONNX in a temporary directory and profile it; see the module docstring.

    Weights do not change the graph, but ``random`` (the default) gives
    realistic activations, where ``none`` could drift into denormals.
    """
    _check_settings(arch, img_size, runs, warmup, threads)
    ort = _onnxruntime()
    with tempfile.TemporaryDirectory(prefix="sdeploy-profile-") as tmp:
        workdir = Path(tmp)
        status(f"{arch}: fp32 ONNX export into a temporary directory", progress)
        result = export(arch, ONNX.name, weights=weights, out=workdir / "export", img_size=img_size,
                        num_classes=num_classes, seed=seed, progress=progress)  # fmt: skip
        if not result.ok:
            raise SdeployError(f"exporting {arch} to ONNX failed: {result.results[0].error}", exit_code=1)
        manifest = result.manifest
        onnx_path = workdir / "export" / result.results[0].path
        network = get_arch(manifest["arch"]).build(manifest["num_classes"])
        costs = layer_costs(network, img_size)
        inputs = random_inputs(1, manifest_contract(manifest))
        with Task(f"{arch}: profiling {runs} runs with onnxruntime", enabled=progress) as task:
            times, run_ms = profile_node_times(onnx_path, inputs, runs=runs, warmup=warmup, threads=threads,
                                               workdir=workdir)  # fmt: skip
            default_ms = default_run_ms(onnx_path, inputs, runs=runs, warmup=warmup, threads=threads)
            task.done(f"{run_ms:.2f} ms per run profiled")
        kinds = kind_costs(_load_onnx(onnx_path), times, costs)
    return OpProfile(
        arch=manifest["arch"], img_size=img_size, threads=threads, runs=runs, warmup=warmup,
        weights=manifest["weights"]["kind"], onnxruntime=ort.__version__, optimization=PROFILED_OPTIMIZATION,
        node_ms=sum(k.ms for k in kinds), run_ms=run_ms, default_run_ms=default_ms,
        mflops=sum(c.macs for c in costs) / 1e6, mac_m=sum(k.mac_m for k in kinds), kinds=kinds,
    )  # fmt: skip


def _check_settings(arch: str, img_size: int, runs: int, warmup: int, threads: int) -> None:
    get_arch(arch)
    check_img_size(img_size)
    check_run_counts(runs, warmup)
    if threads < 1:
        raise SdeployError(f"--threads must be at least 1, got {threads}")


def _onnxruntime():
    require_modules(ONNX.modules, ONNX.extra, "sdeploy profile")
    import onnxruntime

    return onnxruntime


def _load_onnx(path: Path):
    import onnx

    return onnx.load(str(path))


# ---------------------------------------------------------------- running the profiler


@dataclass
class NodeTime:
    op_type: str
    us_per_run: list[float]  # kernel time in each timed run
    input_shapes: list[list[int]]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.us_per_run) / 1000


def _session(path: Path, threads: int, level: str, profile_prefix: Path | None = None):
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def profile_node_times(path: Path, inputs: np.ndarray, *, runs: int, warmup: int, threads: int,
                       workdir: Path) -> tuple[dict[str, NodeTime], float]:  # fmt: skip
    """Kernel times per node name in each of ``runs`` timed runs, and the median run time in ms.

    The session runs at ORT_ENABLE_BASIC: it folds constants but fuses no
    operators, so every profiled node is a node of the exported file under
    its own name and its time maps to exactly one graph node.  The default
    level fuses Conv+ReLU and inserts NCHWc reorder nodes under new names
    whose time belongs to no single source op; ``default_run_ms`` reports
    what that level costs end to end.
    """
    session = _session(path, threads, PROFILED_OPTIMIZATION, workdir / "ort-profile")
    feed = {session.get_inputs()[0].name: inputs}
    for _ in range(warmup + runs):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text("utf-8"))
    model_runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                        key=lambda e: e["ts"])[warmup:]  # fmt: skip
    windows = [(e["ts"], e["ts"] + e["dur"]) for e in model_runs]
    times: dict[str, NodeTime] = {}
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        if not any(start <= event["ts"] <= end for start, end in windows):
            continue  # a warm-up run
        name = event["name"][: -len("_kernel_time")]
        args = event.get("args", {})
        entry = times.setdefault(name, NodeTime(args.get("op_name", ""), [], _shapes(args.get("input_type_shape", []))))
        entry.us_per_run.append(event["dur"])
    return times, statistics.median(e["dur"] for e in model_runs) / 1000


def _shapes(type_shapes: list[dict]) -> list[list[int]]:
    return [next(iter(item.values())) for item in type_shapes if item]


def default_run_ms(path: Path, inputs: np.ndarray, *, runs: int, warmup: int, threads: int) -> float:
    """Median wall time of one run at onnxruntime's default optimization level, without the profiler."""
    session = _session(path, threads, "ORT_ENABLE_ALL")
    feed = {session.get_inputs()[0].name: inputs}
    for _ in range(warmup):
        session.run(None, feed)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, feed)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


# ---------------------------------------------------------------- classification and costs


def conv_kind_of(groups: int, in_channels: int, out_channels: int, kernel: tuple[int, ...]) -> str:
    """complexity.conv_kind for a graph Conv, then the profile kind."""
    if groups == in_channels == out_channels and groups > 1:
        layer_kind = "depthwise_conv"
    elif all(k == 1 for k in kernel):
        layer_kind = "group_conv1x1" if groups > 1 else "conv1x1"
    else:
        layer_kind = "conv"
    return LAYER_KINDS[layer_kind]


def op_kind(op_type: str) -> str:
    """Kind of a non-Conv op."""
    if op_type in DATA_MOVEMENT_OPS:
        return "shuffle"
    if op_type in POOLING_OPS:
        return "pooling"
    if op_type in CLASSIFIER_OPS:
        return "classifier"
    return "other"


def classify_graph(model) -> dict[str, str]:
    """Profile kind of every node of an ONNX model, by node name."""
    weights = {init.name: tuple(init.dims) for init in model.graph.initializer}
    kinds = {}
    for node in model.graph.node:
        if node.op_type == "Conv":
            out_channels, in_per_group, *kernel = weights[node.input[1]]
            groups = next((a.i for a in node.attribute if a.name == "group"), 1)
            kinds[node.name] = conv_kind_of(groups, in_per_group * groups, out_channels, tuple(kernel))
        else:
            kinds[node.name] = op_kind(node.op_type)
    return kinds


def classify_profiled(node_time: NodeTime) -> str:
    """Kind of a profiled node that is not in the file (an optimizer renamed it), from its runtime shapes."""
    if node_time.op_type in ("Conv", "FusedConv") and len(node_time.input_shapes) >= 2:
        (_, in_channels, *_), (out_channels, in_per_group, *kernel) = node_time.input_shapes[:2]
        groups = max(1, in_channels // max(1, in_per_group))
        return conv_kind_of(groups, in_channels, out_channels, tuple(kernel))
    return op_kind(node_time.op_type)


def graph_memory_access(model) -> dict[str, int]:
    """Per node that complexity.py does not cover: float elements read plus written, from inferred shapes."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    initializers = {init.name for init in graph.initializer}
    float_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
    elements = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor = value.type.tensor_type
        dims = [d.dim_value for d in tensor.shape.dim]
        if tensor.elem_type in float_types and dims and all(d > 0 for d in dims):
            elements[value.name] = int(np.prod(dims))
    access = {}
    for node in graph.node:
        if node.op_type in COMPUTE_OPS:
            continue
        names = [n for n in node.input if n not in initializers] + list(node.output)
        access[node.name] = sum(elements.get(n, 0) for n in names)
    return access


def kind_costs(model, times: dict[str, NodeTime], costs: list[LayerCost]) -> list[KindCost]:
    """Per kind: profiled ms and time share, FLOPs and MAC from complexity.py plus graph MAC for the rest."""
    graph_kinds = classify_graph(model)
    nodes = defaultdict(int)
    for kind in graph_kinds.values():
        nodes[kind] += 1
    ms = defaultdict(float)
    for name, node_time in times.items():
        # Per-node medians: one preempted run on a shared CPU must not move a whole kind.
        ms[graph_kinds.get(name) or classify_profiled(node_time)] += node_time.median_ms
    flops, mac = defaultdict(int), defaultdict(int)
    for cost in costs:
        flops[LAYER_KINDS[cost.kind]] += cost.macs
        mac[LAYER_KINDS[cost.kind]] += cost.memory_access
    for name, elements in graph_memory_access(model).items():
        mac[graph_kinds[name]] += elements
    total_ms, total_flops, total_mac = sum(ms.values()), sum(flops.values()), sum(mac.values())
    rows = []
    for kind, label in KIND_LABELS.items():
        rows.append(KindCost(
            kind=kind, label=label, nodes=nodes[kind], ms=ms[kind], time_share=_share(ms[kind], total_ms),
            mflops=flops[kind] / 1e6, flops_share=_share(flops[kind], total_flops),
            mac_m=mac[kind] / 1e6, mac_share=_share(mac[kind], total_mac),
        ))  # fmt: skip
    return rows


def _share(part: float, total: float) -> float:
    return 100.0 * part / total if total else 0.0
