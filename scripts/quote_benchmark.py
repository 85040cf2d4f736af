"""Copy the synthetic benchmark's tables into BENCHMARKS.md and each method's README.

``benchmarks/results/synthetic/benchmark.md`` (written by ``wsol benchmark``) is the source: its
caption, its table of means and its table of paired differences replace those under the first
heading of BENCHMARKS.md; each ``src/wsol_lightning/models/<method>/README.md`` quotes, under "On the
synthetic benchmark", the reference row and its own row of the first table and its own row of the
second. Run after copying a new report into ``benchmarks/results/synthetic``; ``--check`` changes
nothing and exits 1 when a file is out of date (the test suite runs it)::

    python scripts/quote_benchmark.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPORT = REPO / "benchmarks" / "results" / "synthetic" / "benchmark.md"
BENCHMARKS = REPO / "BENCHMARKS.md"
MODELS = REPO / "src" / "wsol_lightning" / "models"
README_SECTION = "## On the synthetic benchmark"
REFERENCE = "cam"


def tables(lines: list[str]) -> list[tuple[int, int]]:
    """``(start, end)`` line spans of the markdown tables in ``lines`` (header, separator, body)."""
    spans, start = [], None
    for i, line in enumerate([*lines, ""]):
        if line.startswith("|") and start is None:
            start = i
        elif not line.startswith("|") and start is not None:
            spans.append((start, i))
            start = None
    return spans


def method_of(row: str) -> str:
    return row.strip("|").split("|", 1)[0].strip()


def report_parts(text: str) -> tuple[str, list[str], list[str]]:
    """The caption (the paragraph before the first table), the means table and the differences table."""
    lines = text.splitlines()
    spans = tables(lines)
    if len(spans) < 2:
        raise SystemExit(f"{REPORT}: expected a table of means and a table of differences, found {len(spans)} tables")
    (means_start, means_end), (diff_start, diff_end) = spans[:2]
    return lines[means_start - 2], lines[means_start:means_end], lines[diff_start:diff_end]


def quote_in_benchmarks(text: str, caption: str, means: list[str], differences: list[str]) -> str:
    """BENCHMARKS.md with its first two tables (and the caption above the first) replaced."""
    lines = text.splitlines()
    spans = tables(lines)
    (means_start, means_end), (diff_start, diff_end) = spans[:2]
    lines[diff_start:diff_end] = differences
    lines[means_start:means_end] = means
    lines[means_start - 2] = caption
    return "\n".join(lines) + "\n"


def quote_in_readme(text: str, method: str, means: list[str], differences: list[str], path: Path) -> str:
    """A method README whose quoted rows (reference and ``method``; ``method``'s difference) are current."""
    head, section = text.split(README_SECTION, 1)
    lines = section.splitlines()
    spans = tables(lines)
    if len(spans) < 2:
        raise SystemExit(f"{path}: '{README_SECTION}' needs the quoted table of means and of differences")
    rows = {method_of(row): row for row in means[2:]}
    differences_of = {method_of(row): row for row in differences[2:]}
    missing = [m for m in (REFERENCE, method) if m not in rows] + ([] if method in differences_of else [method])
    if missing:
        raise SystemExit(f"{REPORT}: no row for {', '.join(missing)} (quoted by {path})")
    (means_start, means_end), (diff_start, diff_end) = spans[:2]
    lines[diff_start:diff_end] = [*differences[:2], differences_of[method]]
    lines[means_start:means_end] = [*means[:2], rows[REFERENCE], rows[method]]
    return head + README_SECTION + "\n".join(lines) + ("\n" if section.endswith("\n") else "")


def updated_files() -> dict[Path, str]:
    """Every quoting file and its text with the report's current tables."""
    caption, means, differences = report_parts(REPORT.read_text())
    files = {BENCHMARKS: quote_in_benchmarks(BENCHMARKS.read_text(), caption, means, differences)}
    for readme in sorted(MODELS.glob("*/README.md")):
        text = readme.read_text()
        if README_SECTION in text:
            files[readme] = quote_in_readme(text, readme.parent.name, means, differences, readme)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    options = parser.parse_args(argv)
    stale = {path: text for path, text in updated_files().items() if path.read_text() != text}
    for path, text in stale.items():
        if options.check:
            print(f"{path.relative_to(REPO)}: out of date with {REPORT.relative_to(REPO)}; "
                  "run python scripts/quote_benchmark.py", file=sys.stderr)
        else:
            path.write_text(text)
            print(f"updated {path.relative_to(REPO)}")
    return 1 if stale and options.check else 0


if __name__ == "__main__":
    sys.exit(main())
