"""Charts from a report dict: throughput per workload, and echo/HTTP latency.

matplotlib is optional: ``PlotUnavailable`` says so and the harness carries
on without charts. The Agg backend is forced so plotting works on machines
with no display.
"""
import math
import os

from .report import format_value

# One colour per loop name, stable across charts and runs.
_PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3")


class PlotUnavailable(RuntimeError):
    pass


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise PlotUnavailable("matplotlib is not installed") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panel_loops(report, workload, loops):
    """The loops that ran ``workload`` (raw-c has no micro panels)."""
    row = report["summaries"].get(workload["name"], {})
    return [loop for loop in loops if loop in row]


def _style_axes(ax, workload, names, ylabel):
    from matplotlib.ticker import FuncFormatter

    ax.set_title(workload["name"], fontsize=9)
    ax.set_ylabel(ylabel, fontsize=7)
    ax.set_xlim(-0.6, len(names) - 0.4)   # room for a FAILED marker at either end
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    if ax.get_yscale() == "linear":
        ax.set_ylim(bottom=0)
        metric = workload["metric"]
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, metric)))


def _failed_marker(ax, x):
    ax.text(x, 0.02, "FAILED", rotation=90, ha="center", va="bottom", color="#c44e52",
            fontsize=8, transform=ax.get_xaxis_transform())


def _grid(plt, count, title):
    cols = min(4, count)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.1 * rows), squeeze=False)
    fig.suptitle(title, fontsize=13)
    flat = [ax for row in axes for ax in row]
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def _loops(report):
    names = [l["name"] for l in report["loops"] if l["available"]]
    return names, {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}


def throughput_chart(report, path):
    """Median per loop with min..max error bars, one panel per workload."""
    plt = _pyplot()
    loops, colours = _loops(report)
    workloads = report["workloads"]
    if not workloads or not loops:
        raise PlotUnavailable("nothing to plot")
    h = report["harness"]
    fig, axes = _grid(plt, len(workloads),
                      f"loopx benchmarks ({h['mode']}, {h['started']}): median of "
                      f"{h['rounds']} rounds, bars span min..max")
    for ax, w in zip(axes, workloads):
        row = report["summaries"][w["name"]]
        names = _panel_loops(report, w, loops)
        for x, loop in enumerate(names):
            s = row[loop]
            if s["status"] != "ok":
                _failed_marker(ax, x)
                continue
            err = [[s["median"] - s["min"]], [s["max"] - s["median"]]]
            ax.bar(x, s["median"], color=colours[loop], yerr=err, capsize=3)
        better = "higher" if w["higher_is_better"] else "lower"
        _style_axes(ax, w, names, f"{w['metric']} ({better} is better)")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency_chart(report, path):
    """p50 and p99 latency per loop for the workloads that measure it.

    Log scale: on a shared machine p99 is often 100 times p50, and both matter.
    """
    plt = _pyplot()
    loops, colours = _loops(report)
    workloads = [w for w in report["workloads"] if w["has_latency"]]
    if not workloads:
        raise PlotUnavailable("no latency workload in this report")
    fig, axes = _grid(plt, len(workloads),
                      "Latency per round trip / response (µs, log scale): "
                      "p50 solid, p99 hatched")
    for ax, w in zip(axes, workloads):
        row = report["summaries"][w["name"]]
        names = _panel_loops(report, w, loops)
        ax.set_yscale("log")
        for x, loop in enumerate(names):
            s = row[loop]
            if s["status"] != "ok" or not s["p50_us"] or not s["p99_us"]:
                _failed_marker(ax, x)
                continue
            ax.bar(x - 0.2, s["p50_us"], width=0.4, color=colours[loop])
            ax.bar(x + 0.2, s["p99_us"], width=0.4, color=colours[loop], alpha=0.5, hatch="//")
        _style_axes(ax, w, names, "µs (lower is better)")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency_path(path):
    """``results.png`` -> ``results-latency.png``."""
    stem, ext = os.path.splitext(path)
    return f"{stem}-latency{ext or '.png'}"


def write_charts(report, path):
    """Both charts; returns the paths written. Raises PlotUnavailable."""
    written = [throughput_chart(report, path)]
    try:
        written.append(latency_chart(report, latency_path(path)))
    except PlotUnavailable:
        pass  # no echo/HTTP workload selected: the throughput chart stands alone
    return written
