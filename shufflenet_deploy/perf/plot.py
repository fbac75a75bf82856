"""``sdeploy bench --plot``: single-thread latency against MFLOPs, the picture that shows FLOPs are not speed.

Each point is an artifact's best run at the fewest threads benchmarked:
on a shared machine other processes only ever add time, so the best of N
runs is the estimate they disturb least, and points measured minutes apart
stay comparable.  Interpreter rows (Core ML off macOS) are left out: their
time measures a NumPy interpreter, not Core ML, and would flatten every
other point; the figure's footnote says so.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .bench import EAGER, BenchReport, BenchRow, ModelResult
from ..backends import backend_for_runtime
from ..errors import MissingDependencyError, SdeployError
from ..fsutil import atomic_path

EAGER_COLOR = "black"
FAMILY_MARKERS = {"v2": ("o", "ShuffleNet V2"), "v1": ("s", "ShuffleNet V1")}
#: Arch labels closer than this share of the x range are spread sideways so they do not overprint.
LABEL_CROWDING = 0.03


def plot_latency_vs_mflops(report: BenchReport, path: str | Path, title: str | None = None) -> Path:
    """Write a PNG of best latency at the fewest threads benchmarked against MFLOPs, one line per runtime."""
    plt = require_matplotlib()
    threads = min(report.threads)
    series, skipped = _series(report, threads)
    if not series:
        raise SdeployError("nothing to plot: no artifact was benchmarked successfully")
    figure, axes = plt.subplots(figsize=(9, 6), dpi=120)
    for (runtime, precision, family), points in sorted(series.items()):
        points.sort()
        xs, ys = zip(*points, strict=True)
        color = runtime_color(runtime)
        axes.plot(xs, ys, linestyle="-" if family == "v2" else ":", color=color, linewidth=1, alpha=0.6)
        axes.scatter(xs, ys, marker=FAMILY_MARKERS.get(family, ("^", ""))[0], s=46, zorder=3,
                     color=color if precision == "fp32" else "white", edgecolors=color, linewidths=1.4)  # fmt: skip
    _label_archs(axes, report, threads)
    # From zero on both axes: two archs of equal MFLOPs must not stretch a 0.01-MFLOP span across the plot.
    axes.set_xlim(left=0, right=max(max(x for x, _ in points) for points in series.values()) * 1.1)
    axes.set_ylim(bottom=0)
    axes.legend(handles=_legend_handles(series), fontsize=8, loc="upper left")
    axes.set_xlabel("MFLOPs (multiply-adds per image)")
    axes.set_ylabel(f"latency, ms per image (best of {report.runs} runs, {threads} thread{'s' if threads > 1 else ''})")
    sizes = "/".join(str(s) for s in sorted({m.img_size for m in report.models}))
    axes.set_title(title or f"Latency vs MFLOPs at {sizes}x{sizes}: FLOPs are not speed")
    axes.grid(alpha=0.3)
    footnote = "Every runtime measured on the same CPU, interleaved with eager PyTorch."
    if any(precision != "fp32" for _, precision, _ in series):
        footnote += " Hollow markers: reduced precision."
    if skipped:
        footnote += f" Not plotted (interpreter, not the real runtime's speed): {', '.join(sorted(skipped))}."
    figure.text(0.01, 0.01, footnote, fontsize=7, color="dimgray")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
    return path


def runtime_color(runtime: str) -> str:
    return EAGER_COLOR if runtime == EAGER else backend_for_runtime(runtime).color


def require_matplotlib():
    """matplotlib.pyplot on the file-only Agg backend, or one clear error naming the package to install."""
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError("matplotlib", None, "--plot") from None
    matplotlib.use("Agg")  # files only: no display needed, and no GUI backend picked up from the environment
    import matplotlib.pyplot as plt

    return plt


def _series(report: BenchReport, threads: int) -> tuple[dict, set[str]]:
    """(runtime, precision, family) -> [(MFLOPs, best latency)], and the keys left out as interpreters."""
    series: dict[tuple[str, str, str], list] = defaultdict(list)
    skipped: set[str] = set()
    for model in report.models:
        for row in model.rows:
            timing = row.timing(threads)
            if row.interpreter:
                skipped.add(row.key)
            elif row.status == "ok" and timing:
                series[(row.runtime, row.precision, _family(model))].append((model.mflops, timing.latency_min_ms))
    return series, skipped


def _legend_handles(series: dict) -> list:
    from matplotlib.lines import Line2D

    handles = []
    for runtime, precision in sorted({(r, p) for r, p, _ in series}, key=lambda rp: (rp[0] != EAGER, rp)):
        color = runtime_color(runtime)
        name = "eager PyTorch" if runtime == EAGER else runtime
        handles.append(Line2D([], [], color=color, marker="o", markerfacecolor=color if precision == "fp32" else "white",
                              label=f"{name} {precision}"))  # fmt: skip
    for family in sorted({f for _, _, f in series}, reverse=True):
        marker, label = FAMILY_MARKERS.get(family, ("^", family))
        linestyle = "-" if family == "v2" else ":"
        handles.append(Line2D([], [], color="gray", marker=marker, linestyle=linestyle, label=label))
    return handles


def _label_archs(axes, report: BenchReport, threads: int) -> None:
    """Name each arch above its slowest plotted point; neighbours with near-equal MFLOPs lean apart."""
    tops = []
    for model in report.models:
        latencies = [t.latency_min_ms for row in model.rows if _plotted(row) and (t := row.timing(threads))]
        if latencies:
            tops.append((model.mflops, max(latencies), model.arch))
    if not tops:
        return
    tops.sort()
    span = max(tops[-1][0] - tops[0][0], 1.0)
    for index, (mflops, latency, arch) in enumerate(tops):
        crowded_left = index > 0 and mflops - tops[index - 1][0] < LABEL_CROWDING * span
        crowded_right = index + 1 < len(tops) and tops[index + 1][0] - mflops < LABEL_CROWDING * span
        shift = 7 if crowded_left else -7 if crowded_right else 0
        axes.annotate(arch, (mflops, latency), textcoords="offset points", xytext=(shift, 6), rotation=90,
                      ha="center", va="bottom", fontsize=8)  # fmt: skip
    axes.margins(y=0.3)


def _plotted(row: BenchRow) -> bool:
    return row.status == "ok" and not row.interpreter


def _family(model: ModelResult) -> str:
    return model.arch.split("_")[0]
