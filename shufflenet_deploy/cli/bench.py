"""``sdeploy bench`` and ``sdeploy profile``: how fast, how big, and where the time goes."""

from __future__ import annotations

import json
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import click

from ..perf.bench import (
    DEFAULT_BATCH,
    DEFAULT_RUNS,
    DEFAULT_THREADS,
    DEFAULT_WARMUP,
    EAGER,
    PRECISIONS,
    BenchReport,
    BenchRow,
    ModelResult,
    bench,
    export_for_bench,
    parse_threads,
)
from ..backends import calibrated_targets
from ..errors import SdeployError
from ..fsutil import write_text_atomic
from ..perf.opprofile import DEFAULT_RUNS as PROFILE_RUNS
from ..perf.opprofile import DEFAULT_WARMUP as PROFILE_WARMUP
from ..perf.opprofile import KIND_LABELS, OpProfile, profile_arch
from ..backends import runtime_names
from ..tables import format_table, human_bytes
from .common import IMG_SIZE, NUM_CLASSES, RUNS, SEED, THREADS, echo_json, main, target_choice_metavar


def _model_options(func):
    """--weights/--num-classes/--seed with random weights by default: timing does not depend on their values."""
    func = click.option("--seed", type=SEED, default=0, show_default=True, help="Seed for --weights random.")(func)
    func = click.option("--num-classes", type=NUM_CLASSES, default=None,
                        help="Classifier size (default: from the weights, else 1000).")(func)
    func = click.option("--weights", default="random", show_default=True, metavar="random|imagenet|none|PATH",
                        help="Weights to export with; speed does not depend on them.")(func)
    return func


# ---------------------------------------------------------------- bench


@main.command("bench")
@click.argument("export_dirs", nargs=-1, type=click.Path())
@click.option("--arch", "archs", multiple=True, help="Export this arch first, then benchmark it (repeatable).")
@click.option("--target", "targets", multiple=True, metavar=target_choice_metavar(),
              help="With --arch: formats to export (repeat or comma-separate; default all).")
@click.option("--precision", "precisions", multiple=True, metavar="|".join(PRECISIONS),
              help="With --arch: precision variants to export (repeat or comma-separate; default fp32).")
@click.option("--half", is_flag=True, help="With --arch: also export fp16 variants (same as --precision fp32,fp16).")
@click.option("--calib", type=click.Path(), default=None, metavar="DIR",
              help=f"With --precision int8: calibration images for the static int8 of {', '.join(calibrated_targets())} "
                   "(any folder tree).")
@click.option("--calib-samples", type=click.IntRange(min=1), default=None,
              help="With --calib: use at most this many images (default: export's).")
@click.option("--dynamic-batch", is_flag=True,
              help="With --arch: export a dynamic batch where the format allows, so img/s runs one batch per call.")
@_model_options
@click.option("--img-size", type=IMG_SIZE, default=None, help="With --arch: input size (default 224).")
@click.option("--out", type=click.Path(file_okay=False),
              help="With --arch: keep the exports in OUT/<arch> (default: a temporary directory, deleted).")
@click.option("--runs", type=RUNS, default=DEFAULT_RUNS, show_default=True, help="Timed calls per figure.")
@click.option("--warmup", type=click.IntRange(0, 100_000), default=DEFAULT_WARMUP, show_default=True, help="Untimed calls first.")
@click.option("--threads", default=DEFAULT_THREADS, show_default=True,
              help="Thread counts to measure, comma-separated; 'all' is every CPU core.")
@click.option("--batch", type=click.IntRange(1, 4096), default=DEFAULT_BATCH, show_default=True, help="Images per throughput call.")
@click.option("--runtime", "runtimes", multiple=True, type=click.Choice(runtime_names()),
              help="Only these runtimes (repeatable); eager PyTorch always runs.")
@click.option("--skip-interpreter", is_flag=True,
              help="Leave out runtimes that run in a stand-in interpreter here (Core ML off macOS: slow, not Core ML speed).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the full report as JSON to this file ('-' for stdout).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG of latency (at the fewest --threads, 1 by default) against MFLOPs; needs matplotlib.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def bench_command(export_dirs, archs, targets, precisions, half, calib, calib_samples, dynamic_batch, weights, num_classes,
                  seed, img_size, out, runs, warmup, threads, batch, runtimes, skip_interpreter, json_path, plot_path,
                  quiet) -> None:  # fmt: skip
    """Latency, throughput, size and peak memory of every artifact, as ratios to eager PyTorch.

    Each artifact runs in a fresh process, timed interleaved with eager PyTorch.
    Exit code 1 if any artifact could not be benchmarked. Benchmark existing
    exports, or export first:

    \b
        sdeploy bench exports/v2_x0_5
        sdeploy bench --arch v2_x0_5 --arch v1_g8_x1_0 --target onnx,ncnn --plot bench.png
    """
    if bool(export_dirs) == bool(archs):
        raise SdeployError("give export directories or --arch ARCH, not both and not neither")
    parse_threads(threads)  # a typo fails now, not after the exports
    if plot_path:
        from ..perf.plot import require_matplotlib

        require_matplotlib()  # before minutes of benchmarking, not after
    export_options = {"targets": targets, "precisions": precisions, "half": half, "calib": calib,
                      "calib_samples": calib_samples, "dynamic_batch": dynamic_batch, "weights": weights,
                      "num_classes": num_classes, "seed": seed, "img_size": img_size, "out": out}  # fmt: skip
    with ExitStack() as stack:
        if archs:
            export_dirs = _export_first(stack, archs, progress=not quiet, **export_options)
        elif any(value for name, value in export_options.items() if name != "weights") or weights != "random":
            raise SdeployError("--target, --precision, --half, --calib, --dynamic-batch, --weights, --num-classes, "
                               "--seed, --img-size and --out apply with --arch only: an export directory already fixes "
                               "them")  # fmt: skip
        report = bench(export_dirs, runs=runs, warmup=warmup, threads=threads, batch=batch,
                       runtimes=list(runtimes) or None, skip_interpreter=skip_interpreter, progress=not quiet)  # fmt: skip
    _write_outputs(report, json_path, plot_path)
    if not report.ok:
        sys.exit(1)


def _export_first(stack: ExitStack, archs, *, targets, precisions, half, out, progress, **options) -> list[Path]:
    root = Path(out) if out else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sdeploy-bench-export-")))
    wanted = [p.strip() for value in precisions for p in value.split(",") if p.strip()] or ["fp32"]
    if half:
        wanted += ["fp32", "fp16"]
    return export_for_bench(archs, root, targets=targets or "all", precisions=wanted, progress=progress, **options)


def _write_outputs(report: BenchReport, json_path: str | None, plot_path: str | None) -> None:
    if plot_path:
        from ..perf.plot import plot_latency_vs_mflops

        plot_latency_vs_mflops(report, plot_path)
    if json_path == "-":
        echo_json(report.to_dict())
    else:
        if json_path:
            write_text_atomic(Path(json_path), json.dumps(report.to_dict(), indent=2) + "\n")
        click.echo(format_bench_report(report))
    if plot_path:
        click.echo(f"plot: {plot_path}", err=json_path == "-")


def format_bench_report(report: BenchReport) -> str:
    settings = (f"{report.runs} timed runs after {report.warmup} warm-up, img/s from batches of {report.batch}; "
                f"{report.cpu_count} CPU cores")  # fmt: skip
    blocks = [settings]
    for model in report.models:
        blocks.append(_model_block(model, report.threads))
    blocks.append(
        "x = ratio to eager PyTorch: 'lat x' = 'lat ms' / 'eager ms' of the same row, eager being timed interleaved\n"
        "with that artifact in its own worker process; below 1 (lat x) and above 1 (img/s x) are faster than eager.\n"
        "'size x' is relative to the fp32 state_dict, 'RSS x' to eager's peak RSS; peak RSS: what loading and running the model adds to a fresh process that has imported its runtime."
    )
    return "\n\n".join(blocks)


def _model_block(model: ModelResult, threads: list[int]) -> str:
    header = (f"{model.arch} at {model.img_size}x{model.img_size}, {model.weights} weights: {model.params / 1e6:.2f}M params, "
              f"{model.mflops:.1f} MFLOPs, MAC {model.mac_m:.2f}M elements (conv + FC), fp32 state_dict "
              f"{human_bytes(model.state_dict_bytes)}")  # fmt: skip
    rows = [cells for row in model.rows for cells in _row_cells(row, threads)]
    headers = ("artifact", "runtime", "prec", "thr", "lat ms", "p90 ms", "eager ms", "lat x", "img/s", "img/s x", "size",
               "size x", "peak RSS", "RSS x")  # fmt: skip
    lines = [header, format_table(headers, rows, right=tuple(range(3, len(headers))))]
    return "\n".join(lines + _model_notes(model))


def _row_cells(row: BenchRow, threads: list[int]) -> list[list[str]]:
    runtime = "eager PyTorch" if row.runtime == EAGER else row.runtime + (" (interpreter)" if row.interpreter else "")
    static = [human_bytes(row.size_bytes), f"{row.size_ratio:.2f}", _bytes(row.peak_memory_bytes), _ratio(row.memory_ratio)]
    if row.status != "ok":
        return [[row.key, runtime, row.precision, "-", row.status.upper(), "", "", "", "", "", *static]]
    lines = []
    for index, count in enumerate(threads):
        t = row.timing(count)
        # 'eager ms' is the eager run this row's ratio divides by: timed in the same worker, interleaved.
        timing = [f"{t.latency_ms:.2f}", f"{t.latency_p90_ms:.2f}", f"{t.eager_latency_ms:.2f}", f"{t.latency_ratio:.2f}",
                  f"{t.throughput_ips:.1f}", f"{t.throughput_ratio:.2f}"]  # fmt: skip
        # Size and memory do not depend on threads: shown once per artifact.
        lines.append([row.key if index == 0 else "", runtime if index == 0 else "", row.precision if index == 0 else "",
                      str(count), *timing, *(static if index == 0 else [""] * 4)])  # fmt: skip
    return lines


def _model_notes(model: ModelResult) -> list[str]:
    notes = []
    modes: dict[str, list[str]] = {}
    for row in model.rows:
        if row.status == "ok":
            modes.setdefault(row.throughput_mode, []).append(row.key)
    if len(modes) > 1 or any(r.batch_size for r in model.rows if r.status == "ok"):
        notes += [f"img/s, {', '.join(keys)}: {mode}" for mode, keys in modes.items()]
    notes += [f"{r.key}: {r.description}: a stand-in interpreter, so its speed is not the real runtime's"
              for r in model.rows if r.interpreter]  # fmt: skip
    notes += [f"{r.key}: {r.status.upper()}: {r.error}" for r in model.rows if r.status != "ok"]
    notes += model.notes
    return [f"note: {n}" for n in notes]


def _bytes(value: int | None) -> str:
    return "-" if value is None else human_bytes(value)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# ---------------------------------------------------------------- profile


@main.command("profile")
@click.argument("arch")
@click.option("--compare", "compare", multiple=True, metavar="ARCH", help="Profile these archs too, side by side (repeatable).")
@click.option("--img-size", type=IMG_SIZE, default=224, show_default=True, help="Input size.")
@click.option("--runs", type=RUNS, default=PROFILE_RUNS, show_default=True, help="Profiled runs (medians per node).")
@click.option("--warmup", type=click.IntRange(0, 100_000), default=PROFILE_WARMUP, show_default=True, help="Runs first, left out of the figures.")
@click.option("--threads", type=THREADS, default=1, show_default=True, help="onnxruntime intra-op threads.")
@_model_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of profiles) instead of the table.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def profile_command(arch, compare, img_size, runs, warmup, threads, weights, num_classes, seed, as_json, quiet) -> None:
    """Where the time goes, by op kind (1x1, grouped 1x1, depthwise conv, shuffle...), next to FLOPs and MAC shares.

    Runs the fp32 ONNX export under onnxruntime's profiler. Example:

    \b
        sdeploy profile v1_g8_x1_0 --compare v2_x1_0
    """
    settings = {"img_size": img_size, "runs": runs, "warmup": warmup, "threads": threads, "weights": weights,
                "num_classes": num_classes, "seed": seed, "progress": not quiet}  # fmt: skip
    profiles = [profile_arch(name, **settings) for name in dict.fromkeys([arch, *compare])]
    if as_json:
        echo_json([p.to_dict() for p in profiles])
    else:
        click.echo(format_profiles(profiles))


def format_profiles(profiles: list[OpProfile]) -> str:
    first = profiles[0]
    plural = "s" if first.threads > 1 else ""
    title = (f"op-kind profile at {first.img_size}x{first.img_size}: onnxruntime {first.onnxruntime} CPU, "
             f"{first.threads} thread{plural}, {first.optimization}, median of {first.runs} runs per node")  # fmt: skip
    lines = [title]
    columns = ("ms", "time%", "FLOPs%", "MAC%")
    headers = ["kind", *(c for _ in profiles for c in columns)]
    rows = [[label, *(c for p in profiles for c in _kind_cells(p, kind))] for kind, label in KIND_LABELS.items()]
    rows.append(["total", *(c for p in profiles for c in (f"{p.node_ms:.2f}", "100.0", "100.0", "100.0"))])
    table = format_table(headers, rows, right=tuple(range(1, len(headers))))
    lines += [_group_header(table, [p.arch for p in profiles], len(columns)), table, ""]
    for p in profiles:
        lines.append(f"{p.arch}: {p.mflops:.1f} MFLOPs, MAC {p.mac_m:.2f}M elements; run {p.run_ms:.2f} ms profiled "
                     f"({p.optimization}), {p.default_run_ms:.2f} ms at onnxruntime's default ORT_ENABLE_ALL")  # fmt: skip
    lines.append(
        "time%: share of the summed node times; FLOPs%: multiply-adds (conv + FC only); MAC%: elements read + written "
        "(conv/FC: inputs + outputs + weights; other nodes: float inputs + outputs)."
    )
    return "\n".join(lines)


def _kind_cells(profile: OpProfile, kind: str) -> list[str]:
    cost = profile.kind(kind)
    return [f"{cost.ms:.2f}", f"{cost.time_share:.1f}", f"{cost.flops_share:.1f}", f"{cost.mac_share:.1f}"]


def _group_header(table: str, names: list[str], width: int) -> str:
    """A line naming each profile centred over its columns, positioned from the table's rule line."""
    rule = table.splitlines()[1]
    spans, start = [], 0
    for dashes in rule.split("  "):
        spans.append((start, start + len(dashes)))
        start += len(dashes) + 2
    line = ""
    for index, name in enumerate(names):
        first, last = spans[1 + index * width], spans[index * width + width]
        begin, end = first[0], last[1]
        line = line.ljust(begin) + name.center(end - begin)
    return line.rstrip()
