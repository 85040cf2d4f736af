"""Every shipped config parses (``--print_config``), so none rots; composed recipes with their pieces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from wsol_lightning.callbacks.wandb_report import dataset_name
from wsol_lightning.cli import run_cli
from wsol_lightning.recipes import recipe_command, recipe_configs, recipe_pieces

EXPERIMENTS = Path("experiments")
FULL_CONFIGS = sorted(p for p in EXPERIMENTS.rglob("*.yaml") if p.parent.name in ("experiments", "paper"))
DATA_FRAGMENTS = sorted((EXPERIMENTS / "data").glob("*.yaml"))
BACKBONE_FRAGMENTS = sorted((EXPERIMENTS / "backbone").glob("*.yaml"))
COMPOSED_RECIPES = [p for p in FULL_CONFIGS if recipe_pieces(p)]
PAPER_RECIPES = sorted((EXPERIMENTS / "paper").glob("*.yaml"))


def leaves(tree: dict, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    """``{key path: value}`` of every non-mapping value of a parsed YAML file."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(leaves(value, (*prefix, key)))
        else:
            out[(*prefix, key)] = value
    return out


def print_config(capsys: pytest.CaptureFixture, *configs: Path) -> str:
    args = ["fit"]
    for config in configs:
        args += ["--config", str(config)]
    with pytest.raises(SystemExit) as exit_info:
        run_cli([*args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return capsys.readouterr().out


@pytest.mark.parametrize("config", FULL_CONFIGS, ids=lambda p: str(p.relative_to(EXPERIMENTS)))
def test_config_parses(config: Path, capsys: pytest.CaptureFixture) -> None:
    out = print_config(capsys, *recipe_configs(config))  # a composed recipe with its pieces
    assert "class_path: wsol_lightning.models." in out
    assert "lightning.pytorch" not in out.replace("pytorch_lightning", "")


@pytest.mark.parametrize("fragment", DATA_FRAGMENTS, ids=lambda p: p.name)
def test_data_fragment_composes_with_a_method(fragment: Path, capsys: pytest.CaptureFixture) -> None:
    resolved = yaml.safe_load(print_config(capsys, EXPERIMENTS / "cam.yaml", fragment))
    assert dataset_name(resolved["data"]["dataset"]) == fragment.stem


def test_every_method_has_a_synthetic_config() -> None:
    from wsol_lightning.models import available_models

    missing = [m for m in available_models() if not (EXPERIMENTS / f"{m}.yaml").is_file()]
    assert not missing


def test_every_paper_recipe_is_composed() -> None:
    """Every recipe of ``experiments/paper`` is in the composed form (pieces + a short recipe)."""
    not_composed = [p.name for p in PAPER_RECIPES if not recipe_pieces(p)]
    assert PAPER_RECIPES and not not_composed, f"recipes without a '# compose:' line: {not_composed}"


def test_recipes_set_only_what_their_pieces_do_not() -> None:
    """A recipe repeats no value its pieces already give (``class_path`` aside: it keys the merge)."""
    repeated = []
    for recipe in PAPER_RECIPES:
        from_pieces = {}
        for piece in recipe_pieces(recipe):
            from_pieces.update(leaves(yaml.safe_load(piece.read_text())))
        for path, value in leaves(yaml.safe_load(recipe.read_text())).items():
            if path[-1] != "class_path" and path in from_pieces and from_pieces[path] == value:
                repeated.append(f"{recipe.name}: {'.'.join(path)}")
    assert not repeated, f"values already given by the pieces: {repeated}"


def test_recipe_run_line_is_its_command() -> None:
    """The ``Run:`` comment of every recipe is the command :func:`recipe_command` builds for it."""
    stale = [p.name for p in PAPER_RECIPES if f"#   {recipe_command(p)}\n" not in p.read_text()]
    assert not stale, f"recipes whose 'wsol fit' line is not their compose command: {stale}"


def test_readme_table_lists_every_recipe() -> None:
    """README's "Paper recipes" table has one row per recipe, in file order (paper_recipes_table.py)."""
    section = Path("README.md").read_text().split("## Paper recipes", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([^`]+\.yaml)` \|", section, flags=re.MULTILINE)
    assert listed == [p.name for p in PAPER_RECIPES]


@pytest.mark.parametrize("recipe", COMPOSED_RECIPES, ids=lambda p: p.stem)
def test_composed_recipe_resolves_to_its_cell(recipe: Path, capsys: pytest.CaptureFixture) -> None:
    """Method, backbone and dataset of ``<method>_<backbone>_<dataset>.yaml`` come out of the composition."""
    resolved = yaml.safe_load(print_config(capsys, *recipe_configs(recipe)))
    method, rest = recipe.stem.split("_", 1)
    backbone, dataset = rest.rsplit("_", 1)
    assert resolved["model"]["class_path"].rsplit(".", 1)[-1].lower() == method
    assert resolved["model"]["init_args"]["backbone"] == backbone
    assert resolved["model"]["init_args"]["pretrained"] is True  # from the backbone piece
    assert dataset_name(resolved["data"]["dataset"]) == dataset
    logger_args = resolved["trainer"]["logger"]["init_args"]
    assert logger_args["project"] == "wsol-lightning"  # from trainer/wandb.yaml
    assert logger_args["name"]  # from the recipe: the init_args of both files merged


@pytest.mark.parametrize("fragment", BACKBONE_FRAGMENTS, ids=lambda p: p.name)
def test_backbone_fragment_composes_with_a_method(fragment: Path, capsys: pytest.CaptureFixture) -> None:
    out = print_config(capsys, EXPERIMENTS / "cam.yaml", fragment)
    assert f"backbone: {fragment.stem}" in out


def test_ddp_trainer_piece(capsys: pytest.CaptureFixture) -> None:
    resolved = yaml.safe_load(print_config(
        capsys, EXPERIMENTS / "cam.yaml", EXPERIMENTS / "trainer" / "ddp.yaml",
    ))
    assert (resolved["trainer"]["strategy"], resolved["trainer"]["sync_batchnorm"]) == ("ddp", True)
    assert resolved["trainer"]["num_nodes"] == 1


def test_missing_compose_piece_is_named(tmp_path: Path) -> None:
    (tmp_path / "paper").mkdir()
    recipe = tmp_path / "paper" / "x.yaml"
    recipe.write_text("# compose: trainer/nope.yaml\nmodel: {}\n")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        recipe_configs(recipe)
