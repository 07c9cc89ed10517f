"""The report: one JSON-able dict, rendered as markdown, JSON and charts.

Everything downstream (markdown here, charts in plot.py) reads only the
report dict, so a saved ``--json`` file holds everything a table or chart
shows.
"""
import json
import os

from .loops import REFERENCES
from .machine import CONTENDED_STALL_FRACTION
from .stats import ratio, summarize_all

SCHEMA_VERSION = 1


def build(*, harness, machine, loops, workloads, skipped_workloads, results):
    summaries = summarize_all(results)
    available = [loop.name for loop in loops if loop.available]
    ratios = {}
    for w in workloads:
        row = summaries.get(w.name, {})
        ratios[w.name] = {}
        for loop in available:
            cells = {}
            for ref in REFERENCES:
                if ref in available and ref != loop:
                    cells[f"x {ref}"] = ratio(row.get(loop), row.get(ref), w.higher_is_better)
                    cells[f"cpu x {ref}"] = ratio(row.get(loop), row.get(ref), False,
                                                  field="cpu_us_per_op")
            ratios[w.name][loop] = cells
    return {
        "schema": SCHEMA_VERSION,
        "harness": harness,
        "machine": machine,
        "loops": [loop.to_json() for loop in loops],
        "workloads": [
            {"name": w.name, "group": w.group, "metric": w.metric,
             "higher_is_better": w.higher_is_better, "description": w.description,
             "has_latency": w.has_latency}
            for w in workloads
        ],
        "skipped_workloads": skipped_workloads,
        "summaries": {w: {loop: s.to_json() for loop, s in row.items()}
                      for w, row in summaries.items()},
        "ratios": ratios,
        "runs": [r.to_json() for r in results],
    }


def write_json(report, path):
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")


def format_value(value, metric):
    if value is None:
        return "—"
    if metric == "B/conn":
        return f"{value / 1024:.1f} KiB" if value >= 1024 else f"{value:.0f} B"
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _fmt_num(value, digits=1):
    return "—" if value is None else f"{value:.{digits}f}"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _value_cell(summary, metric):
    if summary is None:
        return "—"  # not applicable (raw-c on a micro workload)
    if summary["status"] != "ok":
        return f"FAILED ({summary['reason_kind']})"
    mark = "*" if summary["contended_rounds"] else ""
    return format_value(summary["median"], metric) + mark


def _ratio_columns(report):
    """``[(loop, reference), ...]``: every loop against asyncio, and every
    loop but asyncio against uvloop (asyncio x uvloop is just the inverse)."""
    available = [l["name"] for l in report["loops"] if l["available"]]
    columns = []
    for loop in available:
        for ref in REFERENCES:
            if ref in available and loop != ref and not (ref == "uvloop" and loop == "asyncio"):
                columns.append((loop, ref))
    return columns


def _header_lines(report):
    h, m = report["harness"], report["machine"]
    pin = (f"loop under test on CPU {h['server_cpu']}, load generator on CPU {h['client_cpu']}"
           if h.get("server_cpu") is not None else "no CPU pinning")
    lines = [
        f"# loopx benchmarks ({h['mode']}), {h['started']}",
        "",
        f"- Machine: {m['cpu_model']}, {m['cpus_online']} CPUs ({pin}), {m['kernel']}, "
        f"Python {m['python']}, load average {' '.join(m.get('loadavg') or [])}",
        f"- Method: {h['rounds']} round{'s' if h['rounds'] != 1 else ''}, loops interleaved with the first loop rotated each "
        f"round; a fresh process per (loop, workload, round); median of rounds. "
        f"Measured per run: micro {h['budgets']['micro']['duration']} s "
        f"(+{h['budgets']['micro']['warmup']} s warm-up), network "
        f"{h['budgets']['network']['duration']} s (+{h['budgets']['network']['warmup']} s). "
        f"Every echoed byte and every HTTP response verified by the C load generator.",
        "- Loops: " + "; ".join(_loop_line(l) for l in report["loops"]),
    ]
    packages = m.get("workload_modules") or {}
    if packages:
        lines.append("- Workload packages: " + ", ".join(
            f"{name} {version or 'not installed'}" for name, version in packages.items()))
    if report["skipped_workloads"]:
        lines.append("- Skipped workloads: " + "; ".join(
            f"{w} ({why})" for w, why in report["skipped_workloads"].items()))
    lines.append(f"- Took {h['seconds']:.0f} s.")
    return lines


def _one_line(text):
    """Reasons come from tracebacks and servers: keep the markdown intact."""
    return " ".join(str(text).split()).replace("|", "/")


def _loop_line(loop):
    if not loop["available"]:
        return f"{loop['name']}: skipped, {_one_line(loop['reason'])}"
    text = f"{loop['name']} {loop.get('version') or ''}".rstrip()
    where = [loop["loop_type"]] if loop.get("loop_type") else []
    version = loop.get("version") or ""
    if loop.get("file") and not version.startswith("stdlib"):
        # Which copy was measured: the installed package, not a source tree.
        where.append("from " + os.path.relpath(os.path.dirname(loop["file"])))
    return text + (f" ({', '.join(where)})" if where else "")


def _ratio_cells(report, workload, ratio_cols, prefix):
    ratios = report["ratios"].get(workload, {})
    cells = []
    for loop, ref in ratio_cols:
        value = ratios.get(loop, {}).get(f"{prefix}x {ref}")
        cells.append("—" if value is None else f"{value:.2f}x")
    return cells


def _cpu_cell(summary):
    if summary is None:
        return "—"
    if summary["status"] != "ok":
        return "FAILED"
    return _fmt_num(summary["cpu_us_per_op"], 2)


def markdown(report):
    loops = [l["name"] for l in report["loops"] if l["available"]]
    ratio_cols = _ratio_columns(report)
    header = ["workload", "unit", *loops, *(f"{a} x {b}" for a, b in ratio_cols)]
    rows, cpu_rows, detail_rows, failures = [], [], [], []
    for w in report["workloads"]:
        row = report["summaries"].get(w["name"], {})
        rows.append([w["name"], w["metric"],
                     *(_value_cell(row.get(loop), w["metric"]) for loop in loops),
                     *_ratio_cells(report, w["name"], ratio_cols, "")])
        if any(s["cpu_us_per_op"] for s in row.values() if s["status"] == "ok"):
            cpu_rows.append([w["name"], "µs/op", *(_cpu_cell(row.get(loop)) for loop in loops),
                             *_ratio_cells(report, w["name"], ratio_cols, "cpu ")])
        for loop in loops:
            s = row.get(loop)
            if s is None:
                continue
            if s["status"] != "ok":
                failures.append(f"- {loop} · {w['name']}: {_one_line(s['reason'])}")
                continue
            detail_rows.append([
                w["name"], loop, format_value(s["min"], w["metric"]),
                format_value(s["median"], w["metric"]), format_value(s["max"], w["metric"]),
                _fmt_num(s["cpu_us_per_op"], 2), _fmt_num(s["p50_us"]), _fmt_num(s["p99_us"]),
                str(s["rounds"]), str(s["contended_rounds"]),
            ])

    out = _header_lines(report)
    out += ["", "## Median throughput and ratios", "", _table(header, rows), "",
            "Ratios compare medians; above 1 is better than the reference (for B/conn, "
            "less memory). `*`: a round ran while the CPU was contended (PSI: a task "
            f"waited for a CPU more than {CONTENDED_STALL_FRACTION:.0%} of the window). "
            "`—`: not applicable."]
    out += ["", "## CPU time per operation (median) and ratios", "",
            "CPU time of the process under test (the server, for network workloads) per "
            "operation, read over the measured window only. Time spent waiting for a CPU is "
            "not in it, so on a shared, noisy machine these ratios are steadier than the "
            "throughput ratios above. Above 1 is better (less CPU per operation).", "",
            _table(header, cpu_rows)]
    if failures:
        out += ["", "## Failures", "", *failures]
    out += ["", "## Details", "",
            "Latencies are per round trip (per response for HTTP; for idle connections, "
            "connect plus first echo) as seen by the load generator.", "",
            _table(["workload", "loop", "min", "median", "max", "CPU µs/op", "p50 µs",
                    "p99 µs", "rounds", "contended"], detail_rows)]
    return "\n".join(out) + "\n"
