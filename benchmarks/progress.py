"""Progress on stderr while a session runs (stdout is kept for the report).

Uses ``rich`` when it is installed, plain lines otherwise; either way
failures are announced the moment they happen, not only in the final table.
"""
import sys
import time


class PlainProgress:
    def __init__(self, total):
        self.total, self.done, self.t0 = total, 0, time.monotonic()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def step(self, description):
        print(f"[{self.done + 1}/{self.total} {time.monotonic() - self.t0:5.0f}s] {description}",
              file=sys.stderr, flush=True)

    def advance(self):
        self.done += 1

    def note(self, text):
        print(f"    {text}", file=sys.stderr, flush=True)


class RichProgress:
    def __init__(self, total):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)

        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(), console=Console(stderr=True), transient=False,
        )
        self._task = self._progress.add_task("starting", total=total)

    def __enter__(self):
        self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self._progress.__exit__(*exc)

    def step(self, description):
        self._progress.update(self._task, description=description)

    def advance(self):
        self._progress.advance(self._task)

    def note(self, text):
        self._progress.console.print(text, markup=False, highlight=False)


def make_progress(total, fancy=True):
    """A progress display for ``total`` runs: rich if available and wanted."""
    if fancy:
        try:
            return RichProgress(total)
        except ImportError:
            pass
    return PlainProgress(total)
