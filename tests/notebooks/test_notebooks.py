"""The notebooks: ``.py`` (jupytext percent) is the source, ``.ipynb`` its output-free pair; both run."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = sorted(Path("notebooks").glob("*.py"))


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_ipynb_is_the_synced_output_free_pair(source: Path) -> None:
    """``jupytext --sync notebooks/*.py`` was run after the last edit, and no output was committed."""
    paired = source.with_suffix(".ipynb")
    assert paired.is_file(), f"{paired} missing: run jupytext --sync {source}"
    expected = [(c.cell_type, c.source) for c in jupytext.read(source).cells]
    notebook = nbformat.read(paired, as_version=4)
    assert [(c.cell_type, c.source) for c in notebook.cells] == expected, f"run jupytext --sync {source}"
    has_outputs = any(c.get("outputs") or c.get("execution_count") for c in notebook.cells)
    assert not has_outputs, f"strip the outputs of {paired}"
    assert any("parameters" in c.metadata.get("tags", []) for c in notebook.cells), "no parameter cell"


@pytest.mark.slow
@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(source: Path, tmp_path: Path) -> None:
    """Executed as a user would (a Jupyter kernel, the tiny parameters); PNGs written and shown."""
    from nbclient import NotebookClient

    notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    pngs = list((tmp_path / "notebook_outputs" / source.stem).glob("*.png"))
    assert len(pngs) >= 3, pngs
    assert any(o.get("data", {}).get("image/png") for c in notebook.cells for o in c.get("outputs", []))
