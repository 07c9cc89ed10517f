"""Shows the conformance counts in pytest's terminal summary.

Each conformance item records its summary line as a user property (see
test_conformance.py); this hook prints them in a section of their own, so they
appear in plain `pytest` output without -s or -v.
"""
import sys


def pytest_terminal_summary(terminalreporter):
    summaries, details = [], []
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) not in ("call", "setup"):
                continue
            for key, value in getattr(report, "user_properties", ()):
                if key == "conformance" and value not in summaries:
                    summaries.append(value)
                elif key == "conformance_details" and value not in details:
                    details.append(value)
    if not summaries:
        return
    terminalreporter.write_sep(
        "=", "loopx conformance: CPython %d.%d.%d test_asyncio" % sys.version_info[:3])
    for line in sorted(summaries):
        terminalreporter.write_line(line)
    for block in details:
        terminalreporter.write_line(block)
