"""``bench()``: latency, throughput, size and memory of every exported artifact, as ratios to eager PyTorch.

Shared CPUs are noisy, so every figure is paired with eager PyTorch measured
the same way: each artifact runs in its own fresh worker process
(:mod:`.worker`), which times the artifact and the eager model
interleaved in blocks, so load and drift on the machine hit both alike.
Ratios are what compares across machines and runs; absolute numbers are
reported too.

Definitions (also in every JSON report under ``definitions``):

* latency: wall time of one call with one image, median and p90 over
  ``runs`` calls after ``warmup`` calls; ``latency_ratio`` = artifact / eager
  (below 1 is faster than eager);
* throughput: images per second for a batch of ``batch`` images (median call
  time); an artifact with a fixed batch of 1 runs ``batch`` sequential calls;
  ``throughput_ratio`` = artifact / eager (above 1 is faster);
* size: the artifact's bytes as recorded in the manifest; ``size_ratio`` is
  relative to the fp32 ``state_dict`` saved with ``torch.save``;
* peak memory: the worker's peak resident set size minus its RSS after
  importing Python, NumPy, torch and the runtime's package, i.e. what
  loading and running the model adds; ``memory_ratio`` is relative to the
  eager model's figure measured the same way;
* params, MFLOPs (multiply-adds) and MAC (elements read and written by conv
  and linear layers, the ShuffleNet V2 paper's memory access cost) come from
  :mod:`.complexity` at the export's input size.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from ..backends import backend_for_runtime, check_runtime_name, get_backend, parse_targets, runner_class, runtime_for
from ..complexity import count_params, layer_costs
from ..errors import SdeployError
from ..export import export
from ..manifest import check_artifact, read_manifest
from ..nets import get_arch
from ..preprocess import check_img_size
from ..progress import Task, status
from ..sysutil import MAX_THREADS
from ..reference import rebuild_reference

SCHEMA = "sdeploy-bench/1"
DEFAULT_RUNS = 20
DEFAULT_WARMUP = 3
DEFAULT_BATCH = 8
DEFAULT_THREADS = "1,all"
EAGER = "eager"

DEFINITIONS = {
    "latency_ms": "one call with one image: median (latency_ms), p90 (latency_p90_ms) and best (latency_min_ms) over "
    "`runs` calls after `warmup`",
    "throughput_ips": "images per second for a batch of `batch` images, from the median call time; fixed-batch "
    "artifacts run sequential calls (see throughput_mode)",
    "eager_*": "the same figure for eager PyTorch, timed interleaved with the artifact in the same worker process",
    "latency_ratio": "latency_ms / eager_latency_ms (below 1: faster than eager)",
    "latency_p90_ratio": "latency_p90_ms / eager_latency_p90_ms",
    "throughput_ratio": "throughput_ips / eager_throughput_ips (above 1: faster than eager)",
    "size_bytes": "artifact size recorded in the manifest (all its files)",
    "size_ratio": "size_bytes / the fp32 state_dict's size as written by torch.save",
    "peak_memory_bytes": "peak RSS of a fresh worker process minus its RSS after importing Python, NumPy, torch and the "
    "runtime's package, while it loads the model and runs one image and one batch at the largest thread count "
    "(Linux: VmHWM, reset after the imports; elsewhere: ru_maxrss)",
    "memory_ratio": "peak_memory_bytes / the eager model's peak_memory_bytes",
    "mflops": "multiply-adds of conv and linear layers per image, in millions, at the export's img_size",
    "mac_m": "memory access cost of conv and linear layers per image (input + output + weight elements), in millions",
    "interpreter": "true where the runtime is an interpreter standing in for the real one (Core ML off macOS): "
    "its speed is not the real runtime's",
}
#: Precision variants ``sdeploy bench --arch ... --precision`` can export; each backend says how (bench_variants).
PRECISIONS = ("fp32", "fp16", "int8")


# ---------------------------------------------------------------- report


@dataclass
class Timing:
    """Figures at one thread count; ``eager_*`` were measured interleaved in the same process."""

    threads: int
    latency_ms: float
    latency_p90_ms: float
    throughput_ips: float
    eager_latency_ms: float
    eager_latency_p90_ms: float
    eager_throughput_ips: float
    #: Best run: the figure other processes on a shared machine disturb least (used by the plot).
    latency_min_ms: float = 0.0
    eager_latency_min_ms: float = 0.0
    latency_samples_ms: list[float] = field(default_factory=list)

    @property
    def latency_ratio(self) -> float:
        return self.latency_ms / self.eager_latency_ms

    @property
    def latency_p90_ratio(self) -> float:
        return self.latency_p90_ms / self.eager_latency_p90_ms

    @property
    def throughput_ratio(self) -> float:
        return self.throughput_ips / self.eager_throughput_ips

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(latency_ratio=self.latency_ratio, latency_p90_ratio=self.latency_p90_ratio,
                    throughput_ratio=self.throughput_ratio)  # fmt: skip
        return data


@dataclass
class BenchRow:
    """One artifact of one export (or the eager model, key ``eager``)."""

    key: str
    runtime: str
    precision: str
    status: str  # ok | error | unavailable
    size_bytes: int
    size_ratio: float
    description: str = ""
    interpreter: bool = False
    batch_size: int | None = None  # the artifact's fixed batch; None when any batch works
    throughput_batch: int = DEFAULT_BATCH
    peak_memory_bytes: int | None = None
    memory_ratio: float | None = None
    timings: list[Timing] = field(default_factory=list)
    error: str | None = None

    @property
    def throughput_calls(self) -> int:
        return 1 if self.batch_size is None else math.ceil(self.throughput_batch / self.batch_size)

    @property
    def throughput_mode(self) -> str:
        if self.batch_size is None:
            return f"one call with a batch of {self.throughput_batch}"
        calls = self.throughput_calls
        return f"{calls} sequential call{'s' if calls > 1 else ''} (fixed batch of {self.batch_size})"

    def timing(self, threads: int) -> Timing | None:
        return next((t for t in self.timings if t.threads == threads), None)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["timings"] = [t.to_dict() for t in self.timings]
        data.update(throughput_calls=self.throughput_calls, throughput_mode=self.throughput_mode)
        return data


@dataclass
class ModelResult:
    """One export directory: the network's costs and a row per artifact, eager first."""

    export_dir: str
    arch: str
    img_size: int
    num_classes: int
    weights: str
    params: int
    mflops: float
    mac_m: float
    state_dict_bytes: int
    rows: list[BenchRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def eager(self) -> BenchRow:
        return self.rows[0]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["rows"] = [r.to_dict() for r in self.rows]
        return data


@dataclass
class BenchReport:
    runs: int
    warmup: int
    threads: list[int]
    batch: int
    cpu_count: int
    models: list[ModelResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(row.status == "ok" for model in self.models for row in model.rows)

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "settings": {"runs": self.runs, "warmup": self.warmup, "threads": self.threads, "batch": self.batch,
                         "cpu_count": self.cpu_count, "torch": torch.__version__, "python": sys.version.split()[0]},
            "definitions": DEFINITIONS,
            "models": [m.to_dict() for m in self.models],
        }  # fmt: skip


# ---------------------------------------------------------------- bench


@dataclass
class _Plan:
    export_dir: Path
    manifest: dict
    keys: list[str]
    notes: list[str]


def bench(
    export_dirs: Iterable[str | Path],
    *,
    runs: int = DEFAULT_RUNS,
    warmup: int = DEFAULT_WARMUP,
    threads: str | Iterable[str | int] = DEFAULT_THREADS,
    batch: int = DEFAULT_BATCH,
    runtimes: Iterable[str] | None = None,
    skip_interpreter: bool = False,
    progress: bool = True,
) -> BenchReport:
    """Benchmark every artifact of each export directory against eager PyTorch; see the module docstring.

    ``threads`` is a comma-separated string or a list of counts and ``"all"``
    (``os.cpu_count()``).  ``runtimes`` keeps only those runtimes;
    ``skip_interpreter`` drops runtimes that are interpreters here (Core ML
    off macOS).  Raises ``SdeployError`` for bad input; a runtime that fails
    is reported in its row instead.
    """
    counts = parse_threads(threads)
    _check_counts(runs, warmup, batch)
    plans = [_plan(Path(d), runtimes, skip_interpreter) for d in export_dirs]
    if not plans:
        raise SdeployError("nothing to benchmark: give export directories or --arch")
    if not any(plan.keys for plan in plans):
        raise SdeployError("no artifact left to benchmark after --runtime/--skip-interpreter")
    report = BenchReport(runs, warmup, counts, batch, os.cpu_count() or 1)
    jobs_total = sum(len(plan.keys) + 1 for plan in plans)
    with tempfile.TemporaryDirectory(prefix="sdeploy-bench-") as tmp:
        workdir = Path(tmp)
        position = 0
        for index, plan in enumerate(plans):
            # torch.save names its zip records after the file: "state_dict.pt", as users save it, for every model.
            state_dict_path = workdir / str(index) / "state_dict.pt"
            state_dict_path.parent.mkdir()
            model = _describe_model(plan, state_dict_path, progress)
            settings = {"runs": runs, "warmup": warmup, "threads": counts, "batch": batch}
            for key in [None, *plan.keys]:  # None: the eager model, first, as every ratio refers to it
                position += 1
                label = f"[{position}/{jobs_total}] {model.arch} {key or EAGER}"
                model.rows.append(_bench_one(plan, model, key, settings, workdir, label, progress))
            _fill_memory_ratios(model)
            report.models.append(model)
    return report


def parse_threads(value: str | int | Iterable[str | int]) -> list[int]:
    """Thread counts from ``"1,all"``-style text or a list; ``all`` is ``os.cpu_count()``; repeats dropped."""
    parts = value.split(",") if isinstance(value, str) else [value] if isinstance(value, int) else list(value)
    counts = []
    for part in parts:
        text = str(part).strip().lower()
        if text == "all":
            counts.append(os.cpu_count() or 1)
        elif text.isdigit() and 1 <= int(text) <= MAX_THREADS:
            counts.append(int(text))
        else:
            raise SdeployError(f"--threads takes whole numbers from 1 to {MAX_THREADS} and 'all', comma-separated "
                               f"(e.g. 1,all), got '{part}'")  # fmt: skip
    if not counts:
        raise SdeployError("--threads is empty: give e.g. 1,all")
    return list(dict.fromkeys(counts))


def check_run_counts(runs: int, warmup: int) -> None:
    """--runs and --warmup, shared with ``sdeploy profile``."""
    if runs < 1:
        raise SdeployError(f"--runs must be at least 1, got {runs}")
    if warmup < 0:
        raise SdeployError(f"--warmup must be 0 or more, got {warmup}")


def _check_counts(runs: int, warmup: int, batch: int) -> None:
    check_run_counts(runs, warmup)
    if batch < 1:
        raise SdeployError(f"--batch must be at least 1, got {batch}")


def runs_in_interpreter(runtime: str) -> bool:
    """Whether this machine runs ``runtime`` through a stand-in interpreter (Core ML off macOS)."""
    return runner_class(runtime).is_interpreter()


def _plan(export_dir: Path, runtimes: Iterable[str] | None, skip_interpreter: bool) -> _Plan:
    if not export_dir.exists():
        raise SdeployError(f"export directory {export_dir} does not exist: run 'sdeploy export' first or use --arch")
    manifest = read_manifest(export_dir)
    wanted = list(runtimes or [])
    for name in wanted:
        check_runtime_name(name)
    keys, notes = [], []
    for key, record in sorted(manifest["artifacts"].items(), key=_artifact_order):
        runtime = runtime_for(record)
        if wanted and runtime not in wanted:
            continue
        if skip_interpreter and runs_in_interpreter(runtime):
            notes.append(f"{key}: skipped ({runtime} runs in an interpreter here, --skip-interpreter)")
            continue
        keys.append(key)
    return _Plan(export_dir, manifest, keys, notes)


def _artifact_order(item: tuple[str, dict]) -> tuple:
    """Rows grouped by runtime, fp32 before fp16 before int8: the manifest's order is the order of exports."""
    key, record = item
    precision = record.get("precision", "")
    order = backend_for_runtime(runtime_for(record)).order
    return order, PRECISIONS.index(precision) if precision in PRECISIONS else len(PRECISIONS), key


def _describe_model(plan: _Plan, state_dict_path: Path, progress: bool) -> ModelResult:
    """Costs of the network; its state_dict is saved once to measure the size every ratio refers to."""
    manifest = plan.manifest
    with Task(f"eager reference {manifest['arch']}", enabled=progress) as task:
        network = rebuild_reference(manifest, plan.export_dir, progress=progress)
        torch.save(network.state_dict(), state_dict_path)
        task.done("rebuilt")
    img_size = manifest["input"]["img_size"]
    costs = layer_costs(network, img_size)
    return ModelResult(
        export_dir=str(plan.export_dir),
        arch=manifest["arch"],
        img_size=img_size,
        num_classes=manifest["num_classes"],
        weights=manifest["weights"]["kind"],
        params=count_params(network),
        mflops=sum(c.macs for c in costs) / 1e6,
        mac_m=sum(c.memory_access for c in costs) / 1e6,
        state_dict_bytes=state_dict_path.stat().st_size,
        notes=list(plan.notes),
    )


def _bench_one(plan: _Plan, model: ModelResult, key: str | None, settings: dict, workdir: Path, label: str,
               progress: bool) -> BenchRow:  # fmt: skip
    row = _empty_row(plan, model, key, settings["batch"])
    if key is not None:
        problem = check_artifact(plan.export_dir, key, plan.manifest["artifacts"][key]).problem
        if problem:
            row.status, row.error = "error", problem
            return row
    with Task(label, enabled=progress) as task:
        result = _run_worker({"export_dir": str(plan.export_dir), "key": key, **settings}, workdir)
        _fill_row(row, result)
        task.done(_progress_summary(row))
    return row


def _empty_row(plan: _Plan, model: ModelResult, key: str | None, batch: int) -> BenchRow:
    if key is None:
        return BenchRow(EAGER, EAGER, "fp32", "error", model.state_dict_bytes, 1.0, throughput_batch=batch)
    record = plan.manifest["artifacts"][key]
    runtime = runtime_for(record)
    return BenchRow(key, runtime, record["precision"], "error", record["size"], record["size"] / model.state_dict_bytes,
                    interpreter=runs_in_interpreter(runtime), throughput_batch=batch)  # fmt: skip


def _run_worker(job: dict, workdir: Path) -> dict:
    """Run one job in a fresh interpreter; its result file, or an error naming how it died."""
    number = len(list(workdir.glob("job-*.json")))
    job_path, result_path = workdir / f"job-{number}.json", workdir / f"result-{number}.json"
    job_path.write_text(json.dumps({**job, "result": str(result_path)}), "utf-8")
    env = dict(os.environ)
    # The worker must import this very package, also when it runs from a source tree.
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "shufflenet_deploy.perf.worker", str(job_path)]
    proc = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
    if result_path.is_file():
        return json.loads(result_path.read_text("utf-8"))
    last = next((line for line in reversed(proc.stderr.splitlines()) if line.strip()), "no output")
    return {"status": "error", "error": f"benchmark worker died (exit code {proc.returncode}): {last.strip()}"[:400]}


def _fill_row(row: BenchRow, result: dict) -> None:
    row.status = result["status"]
    row.error = result.get("error")
    if row.status != "ok":
        return
    row.description = result["description"]
    row.batch_size = result["batch_size"]
    row.peak_memory_bytes = result["peak_memory_bytes"]
    names = {f.name for f in fields(Timing)}
    row.timings = [Timing(**{k: v for k, v in t.items() if k in names}) for t in result["timings"]]


def _fill_memory_ratios(model: ModelResult) -> None:
    eager_peak = model.eager.peak_memory_bytes
    for row in model.rows:
        if row.peak_memory_bytes is not None and eager_peak:
            row.memory_ratio = row.peak_memory_bytes / eager_peak


def _progress_summary(row: BenchRow) -> str:
    if row.status != "ok":
        return f"{row.status.upper()}: {row.error}"
    first = row.timings[0]
    plural = "s" if first.threads > 1 else ""
    return f"{first.latency_ms:.2f} ms, x{first.latency_ratio:.2f} eager at {first.threads} thread{plural}"


# ---------------------------------------------------------------- export first (--arch)


def export_for_bench(
    archs: Iterable[str],
    root: str | Path,
    *,
    targets: str | Iterable[str] = "all",
    precisions: Iterable[str] = ("fp32",),
    weights: str | Path = "random",
    img_size: int | None = None,
    num_classes: int | None = None,
    seed: int = 0,
    dynamic_batch: bool = False,
    calib: str | Path | None = None,
    calib_samples: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Export each arch under ``root/<arch>``, one pass per precision variant; returns the export directories.

    Variants of one arch share a directory and manifest (fp32 ``onnx`` next to
    ``onnx-fp16``...).  Targets that fail are reported on stderr and left out;
    an arch with no artifact at all is an error.  ``dynamic_batch`` lets the
    formats that support it run the throughput batch in one call; ``calib``
    and ``calib_samples`` are the calibration images of the int8 variant.
    """
    archs = list(dict.fromkeys(archs))
    for arch in archs:
        get_arch(arch)
    if img_size is not None:
        check_img_size(img_size)
    names = parse_targets(targets)
    precisions = list(dict.fromkeys(precisions))
    int8_options = _int8_options(calib, calib_samples, precisions)
    dirs = []
    for arch in archs:
        out = Path(root) / arch
        exported = False
        for precision in precisions:
            chosen, options = precision_variant(precision, names)
            status(f"exporting {arch} ({precision}: {', '.join(chosen)})", progress)
            extra = int8_options if precision == "int8" else {}  # export refuses --calib without int8
            result = export(arch, chosen, weights=weights, out=out, img_size=img_size, num_classes=num_classes,
                            seed=seed, progress=progress, dynamic_batch=dynamic_batch, **options, **extra)  # fmt: skip
            exported = exported or any(r.status == "ok" for r in result.results)
            for failure in (r for r in result.results if r.status == "failed"):
                status(f"warning: {arch} {failure.target} ({precision}) not exported: {failure.error}")
        if not exported:
            raise SdeployError(f"no target of {arch} could be exported, so there is nothing to benchmark")
        dirs.append(out)
    return dirs


def _int8_options(calib: str | Path | None, calib_samples: int | None, precisions: list[str]) -> dict:
    if calib is None:
        return {}
    if "int8" not in precisions:
        raise SdeployError("--calib is only used with --precision int8; add it or drop --calib")
    return {"calib": calib, "calib_samples": calib_samples} if calib_samples else {"calib": calib}


def precision_variant(precision: str, targets: list[str]) -> tuple[list[str], dict]:
    """The targets that offer ``precision`` and the export options that make it (each backend declares its own)."""
    if precision not in PRECISIONS:
        raise SdeployError(f"unknown precision '{precision}': choose from {', '.join(PRECISIONS)}")
    chosen, options = [], {}
    for name in targets:
        variant = get_backend(name).bench_variants.get(precision)
        if variant is None:
            continue
        clash = {k for k in variant if k in options and options[k] != variant[k]}
        if clash:
            raise SdeployError(f"--precision {precision}: {name} needs {', '.join(sorted(clash))} set differently "
                               "from another target; benchmark them in separate runs")  # fmt: skip
        chosen.append(name)
        options.update(variant)
    if not chosen:
        raise SdeployError(f"none of {', '.join(targets)} offers --precision {precision}")
    return chosen, options
