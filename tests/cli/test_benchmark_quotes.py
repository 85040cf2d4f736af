"""BENCHMARKS.md and the method READMEs quote the synthetic benchmark report as it is (scripts/quote_benchmark.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "quote_benchmark.py"


def load_script():
    spec = importlib.util.spec_from_file_location("quote_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quotes_are_current() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_stale_quote_is_found_and_replaced() -> None:
    quote = load_script()
    caption, means, differences = quote.report_parts(quote.REPORT.read_text())
    row = next(r for r in means if quote.method_of(r) == "acol")
    readme = quote.MODELS / "acol" / "README.md"
    current = readme.read_text()
    stale = current.replace(row, row.replace("| 3 |", "| 2 |", 1))
    assert stale != current
    assert quote.quote_in_readme(stale, "acol", means, differences, readme) == current
    other = next(r for r in differences if quote.method_of(r) == "spg")
    benchmarks = quote.BENCHMARKS.read_text()
    stale = benchmarks.replace(other, other.replace("spg |", "spg | 0.00 |", 1))
    assert stale != benchmarks
    assert quote.quote_in_benchmarks(stale, caption, means, differences) == benchmarks
