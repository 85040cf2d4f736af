"""Every shipped config parses (``--print_config``), so none rots; composed recipes with their pieces."""

from __future__ import annotations

from pathlib import Path

import pytest

import yaml

from wsol_lightning.cli import main
from wsol_lightning.recipes import recipe_configs, recipe_pieces

EXPERIMENTS = Path("experiments")
FULL_CONFIGS = sorted(p for p in EXPERIMENTS.rglob("*.yaml") if p.parent.name in ("experiments", "paper"))
DATA_FRAGMENTS = sorted((EXPERIMENTS / "data").glob("*.yaml"))
BACKBONE_FRAGMENTS = sorted((EXPERIMENTS / "backbone").glob("*.yaml"))
COMPOSED_RECIPES = [p for p in FULL_CONFIGS if recipe_pieces(p)]


def print_config(capsys: pytest.CaptureFixture, *configs: Path) -> str:
    args = ["fit"]
    for config in configs:
        args += ["--config", str(config)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return capsys.readouterr().out


@pytest.mark.parametrize("config", FULL_CONFIGS, ids=lambda p: str(p.relative_to(EXPERIMENTS)))
def test_config_parses(config: Path, capsys: pytest.CaptureFixture) -> None:
    out = print_config(capsys, *recipe_configs(config))  # a composed recipe with its pieces
    assert "class_path: wsol_lightning.models." in out
    assert "lightning.pytorch" not in out.replace("pytorch_lightning", "")


@pytest.mark.parametrize("fragment", DATA_FRAGMENTS, ids=lambda p: p.name)
def test_data_fragment_composes_with_a_method(fragment: Path, capsys: pytest.CaptureFixture) -> None:
    out = print_config(capsys, EXPERIMENTS / "cam.yaml", fragment)
    assert f"dataset: {fragment.stem}" in out


def test_every_method_has_a_synthetic_config() -> None:
    from wsol_lightning.models import available_models

    missing = [m for m in available_models() if not (EXPERIMENTS / f"{m}.yaml").is_file()]
    assert not missing


def test_acol_recipes_are_composed() -> None:
    """At least the ACoL family is in the composed form (pieces + a short recipe)."""
    acol = sorted((EXPERIMENTS / "paper").glob("acol_*.yaml"))
    assert acol and set(acol) <= set(COMPOSED_RECIPES)


@pytest.mark.parametrize("recipe", COMPOSED_RECIPES, ids=lambda p: p.stem)
def test_composed_recipe_resolves_to_its_cell(recipe: Path, capsys: pytest.CaptureFixture) -> None:
    """Method, backbone and dataset of ``<method>_<backbone>_<dataset>.yaml`` come out of the composition."""
    resolved = yaml.safe_load(print_config(capsys, *recipe_configs(recipe)))
    method, rest = recipe.stem.split("_", 1)
    backbone, dataset = rest.rsplit("_", 1)
    assert resolved["model"]["class_path"].rsplit(".", 1)[-1].lower() == method
    assert resolved["model"]["init_args"]["backbone"] == backbone
    assert resolved["model"]["init_args"]["pretrained"] is True  # from the backbone piece
    assert resolved["data"]["dataset"] == dataset
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
