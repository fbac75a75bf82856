"""One benchmark job in a fresh interpreter: ``python -m shufflenet_deploy.perf.worker JOB.json``.

:func:`shufflenet_deploy.bench.bench` starts one worker per artifact (and one
for the eager model), so one runtime's libraries, arenas and thread pools
never count towards another's memory.  A worker works in three phases:

1. import the runtime's package, then take the baseline RSS;
2. load the artifact at the largest thread count and run one image and one
   batch: peak RSS minus the baseline is the artifact's memory;
3. only then rebuild the eager model (as verify does) and time the artifact
   and eager PyTorch interleaved, per thread setting, so that load and drift
   on a shared machine hit both alike.

The job and the result are JSON files; the result is written atomically and
always says ``status`` (ok, error or unavailable), so the parent can tell a
runtime that failed from a worker that crashed (no result file at all).
"""

from __future__ import annotations

import contextlib
import gc
import json
import resource
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..backends import RuntimeUnavailable, runner_class, runtime_for
from ..fsutil import write_text_atomic
from ..manifest import manifest_contract, read_manifest
from ..preprocess import random_inputs
from ..sysutil import torch_threads
from ..reference import rebuild_reference

#: Timed calls per side before the other side runs: short blocks, so drift on a shared machine
#: reaches both sides alike.
BLOCK = 5
#: Pause before each block when sides alternate. Thread pools busy-wait after a call (OpenMP
#: briefly, OpenBLAS under the Core ML interpreter for ~0.1 s); on a machine with few cores
#: a pool still spinning steals the cores the other side's threads need.
SWITCH_PAUSE_S = 0.2
INPUT_SEED = 0


# ---------------------------------------------------------------- memory


def peak_rss_bytes() -> int:
    """This process's high-water resident set size.

    On Linux this is ``VmHWM`` rather than ``ru_maxrss``: ``ru_maxrss``
    survives ``exec``, so a worker started by a large parent would report the
    parent's peak.  Elsewhere (macOS) ``ru_maxrss`` is per process and in bytes.
    """
    hwm = _proc_status_bytes("VmHWM")
    if hwm is not None:
        return hwm
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def reset_peak_rss() -> None:
    """Lower the high-water mark to the current RSS (Linux 4.0+), so import-time spikes do not hide the model's peak."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _proc_status_bytes(field: str) -> int | None:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # reported in kB
    return None


# ---------------------------------------------------------------- timing


def interleaved_times(calls: list[Callable[[], object]], runs: int, warmup: int) -> list[list[float]]:
    """``runs`` wall times in ms for each call, measured in alternating blocks of :data:`BLOCK`.

    With more than one call, each block starts after a pause and one untimed
    call, so the previous side's spinning threads and the wake-up of this
    side's own pool stay out of the timings.
    """
    for _ in range(warmup):
        for call in calls:
            call()
    samples: list[list[float]] = [[] for _ in calls]
    while len(samples[0]) < runs:
        count = min(BLOCK, runs - len(samples[0]))
        for call, times in zip(calls, samples, strict=True):
            if len(calls) > 1:
                time.sleep(SWITCH_PAUSE_S)
                call()
            for _ in range(count):
                started = time.perf_counter()
                call()
                times.append((time.perf_counter() - started) * 1000)
    return samples


def summarize(latency_ms: list[float], batch_ms: list[float], batch: int) -> dict:
    # Linear interpolation keeps p90 >= median for any sample.
    return {
        "latency_ms": float(np.median(latency_ms)),
        "latency_p90_ms": float(np.percentile(latency_ms, 90)),
        "latency_min_ms": float(np.min(latency_ms)),
        "throughput_ips": batch / (float(np.median(batch_ms)) / 1000),
        "latency_samples_ms": [round(t, 4) for t in latency_ms],
    }


# ---------------------------------------------------------------- the job


class EagerModel:
    """The exported network in eager PyTorch, rebuilt from the manifest exactly as ``sdeploy verify`` does."""

    def __init__(self, manifest: dict, export_dir: Path):
        self.model = rebuild_reference(manifest, export_dir, progress=False)

    @torch.no_grad()
    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(batch)).numpy()

    @property
    def description(self) -> str:
        return f"torch {torch.__version__} eager (no_grad)"


def run_job(job: dict) -> dict:
    export_dir = Path(job["export_dir"])
    manifest = read_manifest(export_dir)
    contract = manifest_contract(manifest)
    inputs = random_inputs(job["batch"], contract, INPUT_SEED)
    one, batch = inputs[:1], inputs

    load_eager = partial(EagerModel, manifest, export_dir)
    load = _artifact_loader(export_dir, manifest, job["key"]) if job["key"] else lambda threads: load_eager()

    largest = max(job["threads"])
    measured, memory = _measure_memory(load, largest, one, batch)
    # Loaded only now, so it stays out of the artifact's memory figure.
    eager = load_eager() if job["key"] else None
    timings = []
    for count in job["threads"]:
        subject = measured if count == largest else load(count)
        timings.append(_time_threads(subject, eager, count, one, batch, job))
    return {
        "status": "ok",
        "description": measured.description,
        "batch_size": getattr(measured, "batch_size", None),
        **memory,
        "timings": timings,
    }


def _artifact_loader(export_dir: Path, manifest: dict, key: str) -> Callable[[int], object]:
    """``threads -> runner``; the runtime's package is imported here, before the memory baseline."""
    record = manifest["artifacts"][key]
    runner_type = runner_class(runtime_for(record))
    runner_type.check_available()
    return partial(runner_type, export_dir, record, manifest_contract(manifest))


def _measure_memory(load, threads: int, one: np.ndarray, batch: np.ndarray) -> tuple[object, dict]:
    """Load and run once with one image and once with a batch; what that adds to the RSS."""
    gc.collect()
    reset_peak_rss()
    baseline = peak_rss_bytes()
    with torch_threads(threads):
        subject = load(threads)
        subject.run(one)
        subject.run(batch)
    peak = peak_rss_bytes()
    return subject, {"baseline_rss_bytes": baseline, "peak_rss_bytes": peak, "peak_memory_bytes": peak - baseline}


def _time_threads(subject, eager: EagerModel | None, count: int, one: np.ndarray, batch: np.ndarray, job: dict) -> dict:
    runs, warmup = job["runs"], job["warmup"]
    sides = [subject] if eager is None else [subject, eager]
    # Runners set their own thread counts at load; eager PyTorch follows torch's global setting.
    with torch_threads(count):
        latency = interleaved_times([lambda s=s: s.run(one) for s in sides], runs, warmup)
        throughput = interleaved_times([lambda s=s: s.run(batch) for s in sides], runs, warmup)
    timing = {"threads": count, **summarize(latency[0], throughput[0], len(batch))}
    reference = summarize(latency[-1], throughput[-1], len(batch))  # eager: itself when timed alone
    timing.update({f"eager_{name}": value for name, value in reference.items()})
    return timing


def main(argv: list[str]) -> int:
    job_path = Path(argv[0])
    job = json.loads(job_path.read_text("utf-8"))
    try:
        result = run_job(job)
    except RuntimeUnavailable as exc:
        result = {"status": "unavailable", "error": f"not available: {exc}"}
    except Exception as exc:  # noqa: BLE001  (a runtime that cannot run an artifact is a result to report)
        first_line = next((line for line in str(exc).splitlines() if line.strip()), "")
        result = {"status": "error", "error": f"{type(exc).__name__}: {first_line}"[:400]}
    write_text_atomic(Path(job["result"]), json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
