"""Write every one-file paper recipe ``experiments/paper/<recipe>.yaml`` from its source and the shared pieces.

A source, ``experiments/paper/sources/<recipe>.yaml``, starts with a ``# compose:`` line naming the
pieces it builds on (``trainer/...``, ``data/...``, ``backbone/...`` under ``experiments/``), then the
recipe's own header comment (the paper's recipe and where every value comes from) and only the
values its pieces do not give. The built recipe is self-contained: the header, then the pieces and
the source merged as the CLI merges several ``--config`` files (later files win per key; the
``init_args`` of one ``class_path`` merge; lists are replaced). It runs on its own::

    wsol fit --config experiments/paper/acol_vgg16_cub.yaml

Edit the source or a piece, then rebuild (``tests/cli/test_configs.py`` fails while a built recipe is
stale)::

    python scripts/build_recipes.py
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import yaml

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
SOURCES = EXPERIMENTS / "paper" / "sources"
COMPOSE_PREFIX = "# compose:"


def merge(base: Any, override: Any) -> Any:
    """``override`` over ``base`` as jsonargparse merges config files (see the module docstring)."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return copy.deepcopy(override)
    if "class_path" in override and base.get("class_path") not in (None, override["class_path"]):
        return copy.deepcopy(override)
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if key in out else copy.deepcopy(value)
    return out


def pieces_of(source: Path) -> list[Path]:
    """The pieces named by a source's ``# compose:`` line.

    Raises:
        FileNotFoundError: the line is missing or names a piece that does not exist.
    """
    first = source.read_text().splitlines()[0]
    if not first.startswith(COMPOSE_PREFIX):
        raise FileNotFoundError(f"{source}: the first line must be '{COMPOSE_PREFIX} <pieces>'")
    pieces = [EXPERIMENTS / name for name in first[len(COMPOSE_PREFIX):].split()]
    missing = [str(p) for p in pieces if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{source}: compose piece(s) not found: {', '.join(missing)}")
    return pieces


def header_of(source: Path) -> list[str]:
    """The source's leading comment lines after the compose line."""
    lines = source.read_text().splitlines()[1:]
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    return header


def build(source: Path) -> str:
    """The one-file recipe of ``source`` (text)."""
    merged: dict[str, Any] = {}
    for path in [*pieces_of(source), source]:
        merged = merge(merged, yaml.safe_load(path.read_text()) or {})
    recipe = f"experiments/paper/{source.name}"
    root = merged.get("trainer", {}).get("default_root_dir", "runs/<recipe>")
    lines = [
        *header_of(source),
        "# Run:",
        f"#   wsol fit --config {recipe}",
        f"#   wsol test --config {recipe} --ckpt_path {root}/checkpoints/last.ckpt",
        f"# Built by scripts/build_recipes.py from experiments/paper/sources/{source.name} and "
        + ", ".join(str(p.relative_to(EXPERIMENTS)) for p in pieces_of(source))
        + "; edit those, then rebuild.",
    ]
    return "\n".join(lines) + "\n" + yaml.safe_dump(merged, sort_keys=False, width=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only list the recipes that are not current")
    options = parser.parse_args()
    stale = []
    for source in sorted(SOURCES.glob("*.yaml")):
        target = EXPERIMENTS / "paper" / source.name
        text = build(source)
        if not target.is_file() or target.read_text() != text:
            stale.append(target.name)
            if not options.check:
                target.write_text(text)
    print(("stale: " if options.check else "written: ") + (", ".join(stale) or "none"))


if __name__ == "__main__":
    main()
