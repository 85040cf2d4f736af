"""Every shipped config parses (``--print_config``), so none rots."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsol_lightning.cli import main

EXPERIMENTS = Path("experiments")
FULL_CONFIGS = sorted(p for p in EXPERIMENTS.rglob("*.yaml") if p.parent.name in ("experiments", "paper"))
DATA_FRAGMENTS = sorted((EXPERIMENTS / "data").glob("*.yaml"))


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
    out = print_config(capsys, config)
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
