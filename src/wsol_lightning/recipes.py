"""Paper recipes composed from shared pieces (``experiments/{trainer,data,backbone}/*.yaml``).

A composed recipe starts with a ``# compose:`` line naming its pieces relative to the
``experiments`` folder, in the order they are given to the CLI before the recipe itself (later
files win per key; ``model.init_args`` of one ``class_path`` merge)::

    # compose: trainer/default.yaml trainer/wandb.yaml data/cub.yaml backbone/vgg16.yaml

:func:`recipe_configs` turns a recipe into that list of ``--config`` files; a recipe without the
line is a single, self-contained config.
"""

from __future__ import annotations

from pathlib import Path

COMPOSE_PREFIX = "# compose:"


def recipe_pieces(recipe: str | Path) -> list[Path]:
    """The pieces a recipe's ``# compose:`` line names (resolved against its ``experiments`` folder).

    Raises:
        FileNotFoundError: a named piece does not exist (the message names the recipe and piece).
    """
    recipe = Path(recipe)
    experiments = recipe.resolve().parent.parent
    for line in recipe.read_text().splitlines():
        if line.startswith(COMPOSE_PREFIX):
            pieces = [experiments / name for name in line[len(COMPOSE_PREFIX):].split()]
            missing = [str(p) for p in pieces if not p.is_file()]
            if missing:
                raise FileNotFoundError(f"{recipe}: compose piece(s) not found: {', '.join(missing)}")
            return pieces
    return []


def recipe_configs(recipe: str | Path) -> list[Path]:
    """Every ``--config`` file of a recipe, in CLI order: its pieces, then the recipe."""
    return [*recipe_pieces(recipe), Path(recipe)]


def recipe_command(recipe: str | Path, subcommand: str = "fit", root: str | Path = ".") -> str:
    """The ``wsol <subcommand> --config ...`` command line of a recipe, paths relative to ``root``."""
    root = Path(root).resolve()
    configs = [Path(p).resolve() for p in recipe_configs(recipe)]
    return " ".join([f"wsol {subcommand}", *(f"--config {p.relative_to(root)}" for p in configs)])
