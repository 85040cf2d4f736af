"""Every shipped config parses on its own (``--print_config``), so none rots; recipes are current builds."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from wsol_lightning.callbacks.wandb_report import dataset_name
from wsol_lightning.cli import run_cli

EXPERIMENTS = Path("experiments")
FULL_CONFIGS = sorted(p for p in EXPERIMENTS.rglob("*.yaml") if p.parent.name in ("experiments", "paper"))
DATA_FRAGMENTS = sorted((EXPERIMENTS / "data").glob("*.yaml"))
BACKBONE_FRAGMENTS = sorted((EXPERIMENTS / "backbone").glob("*.yaml"))
PAPER_RECIPES = sorted((EXPERIMENTS / "paper").glob("*.yaml"))
RECIPE_SOURCES = sorted((EXPERIMENTS / "paper" / "sources").glob("*.yaml"))


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_recipes", Path("scripts/build_recipes.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILDER = _load_builder()


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
    out = print_config(capsys, config)  # one file, nothing else
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


def test_every_recipe_is_built_from_a_source_and_current() -> None:
    """``experiments/paper/<recipe>.yaml`` is what ``scripts/build_recipes.py`` builds from its source."""
    assert [p.name for p in PAPER_RECIPES] == [p.name for p in RECIPE_SOURCES]
    stale = [p.name for p in RECIPE_SOURCES if (EXPERIMENTS / "paper" / p.name).read_text() != BUILDER.build(p)]
    assert not stale, f"run `python scripts/build_recipes.py`; stale: {stale}"


def test_sources_set_only_what_their_pieces_do_not() -> None:
    """A source repeats no value its pieces already give (``class_path`` aside: it keys the merge)."""
    repeated = []
    for source in RECIPE_SOURCES:
        from_pieces = {}
        for piece in BUILDER.pieces_of(source):
            from_pieces.update(leaves(yaml.safe_load(piece.read_text())))
        for path, value in leaves(yaml.safe_load(source.read_text())).items():
            if path[-1] != "class_path" and path in from_pieces and from_pieces[path] == value:
                repeated.append(f"{source.name}: {'.'.join(path)}")
    assert not repeated, f"values already given by the pieces: {repeated}"


def test_recipe_run_line_is_its_one_file_command() -> None:
    stale = [p.name for p in PAPER_RECIPES if f"#   wsol fit --config experiments/paper/{p.name}\n" not in p.read_text()]
    assert not stale


def test_merge_follows_the_cli_rules() -> None:
    base = {"model": {"class_path": "A", "init_args": {"lr": 1, "x": 2}}, "trainer": {"callbacks": [1, 2]}}
    same = BUILDER.merge(base, {"model": {"class_path": "A", "init_args": {"lr": 3}}, "trainer": {"callbacks": [3]}})
    assert same == {"model": {"class_path": "A", "init_args": {"lr": 3, "x": 2}}, "trainer": {"callbacks": [3]}}
    other = BUILDER.merge(base, {"model": {"class_path": "B", "init_args": {"lr": 3}}})
    assert other["model"] == {"class_path": "B", "init_args": {"lr": 3}}


def test_readme_table_lists_every_recipe() -> None:
    """README's "Paper recipes" table has one row per recipe, in file order (paper_recipes_table.py)."""
    section = Path("README.md").read_text().split("## Paper recipes", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([^`]+\.yaml)` \|", section, flags=re.MULTILINE)
    assert listed == [p.name for p in PAPER_RECIPES]


@pytest.mark.parametrize("recipe", PAPER_RECIPES, ids=lambda p: p.stem)
def test_recipe_resolves_to_its_cell(recipe: Path, capsys: pytest.CaptureFixture) -> None:
    """Method, backbone and dataset of ``<method>_<backbone>_<dataset>.yaml`` come out of the one file."""
    resolved = yaml.safe_load(print_config(capsys, recipe))
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
    source = tmp_path / "x.yaml"
    source.write_text("# compose: trainer/nope.yaml\nmodel: {}\n")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        BUILDER.pieces_of(source)
