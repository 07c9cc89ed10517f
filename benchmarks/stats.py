"""From rounds to the numbers people compare: min/median/max and ratios.

The median is the headline (robust to one disturbed round); min and max show
the spread. A (loop, workload) with any failed round is FAILED as a whole:
a loop that gets the bytes wrong once is broken, however fast it was in the
other rounds.
"""
import statistics
from dataclasses import dataclass, field


@dataclass
class Summary:
    loop: str
    workload: str
    status: str                       # "ok" or "failed"
    reason: str = None
    reason_kind: str = None
    rounds: int = 0
    min: float = None
    median: float = None
    max: float = None
    cpu_us_per_op: float = None       # median over rounds
    p50_us: float = None              # median over rounds
    p99_us: float = None
    contended_rounds: int = 0
    values: list = field(default_factory=list)

    def to_json(self):
        return dict(self.__dict__)


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(results):
    """One Summary for the RunResults of one (loop, workload)."""
    first = results[0]
    failures = [r for r in results if not r.ok]
    if failures:
        return Summary(first.loop, first.workload, "failed", reason=failures[0].reason,
                       reason_kind=failures[0].reason_kind, rounds=len(results))
    values = [r.value for r in results]
    return Summary(
        first.loop, first.workload, "ok", rounds=len(results),
        min=min(values), median=statistics.median(values), max=max(values),
        cpu_us_per_op=_median(r.cpu_us_per_op for r in results),
        p50_us=_median(r.p50_us for r in results),
        p99_us=_median(r.p99_us for r in results),
        contended_rounds=sum(r.contended for r in results),
        values=values,
    )


def summarize_all(results):
    """``{workload: {loop: Summary}}`` for a session's RunResults."""
    grouped = {}
    for r in results:
        grouped.setdefault(r.workload, {}).setdefault(r.loop, []).append(r)
    return {w: {loop: summarize(rs) for loop, rs in by_loop.items()}
            for w, by_loop in grouped.items()}


def ratio(summary, reference, higher_is_better=True, field="median"):
    """How many times better ``summary`` is than ``reference`` on ``field``.

    Above 1 is better either way: for a lower-is-better quantity (memory per
    connection, CPU time per operation) the ratio is inverted so every table
    reads the same.
    """
    if (summary is None or reference is None or summary.status != "ok"
            or reference.status != "ok"):
        return None
    mine, theirs = getattr(summary, field), getattr(reference, field)
    if not mine or not theirs:
        return None
    return mine / theirs if higher_is_better else theirs / mine
