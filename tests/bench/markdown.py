"""Reading the benchmarks' Markdown reports in tests."""


def table(report, title):
    """The rows of the table under the line starting with `title`."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows
