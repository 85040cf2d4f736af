"""Print the README's "Paper recipes" table: every ``experiments/paper`` recipe and the number it targets.

Targets come from the method notes' index (``../shared/papers/README.md`` by default): the
wsolevaluation MaxBoxAccV2 table (verified, "V") and the papers' Top-1 Loc table with its confidence
column ("V"/"L" verified, "M" recalled from the paper and marked *unverified*, "?" a number the
notes could not read, shown as *not available*). Regenerate after adding a recipe and paste the output
under "Paper recipes" in README.md::

    python scripts/paper_recipes_table.py [--papers PATH]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BACKBONES = {"vgg16": "vgg16", "vgg16-gap": "vgg16", "inceptionv3": "inception_v3", "resnet50": "resnet50",
             "resnet50-se": "resnet50", "r50": "resnet50", "inc": "inception_v3", "vgg": "vgg16"}
# Paper backbones that only share our backbone's name: the cell names them (not the same network).
VARIANT_BACKBONES = {"resnet50-se": "ResNet50-SE"}
DATASET_COLUMN = {"cub": "CUB", "ilsvrc": "IN", "openimages": "OI"}


def markdown_rows(text: str, heading: str) -> list[list[str]]:
    """The body rows of the first markdown table after ``heading`` (cells stripped)."""
    section = text.split(heading, 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    return rows


def confidence(text: str, dataset_column: str) -> str:
    """The V/L/M code of a confidence cell for one dataset (``"CUB L, IN M"`` style cells are split)."""
    match = re.search(rf"\b{dataset_column}\s+([VLM])\b", text)
    return match.group(1) if match else text[:1]


def paper_targets(papers_readme: Path) -> tuple[dict, dict]:
    """``({cell: MaxBoxAccV2}, {cell: (top1_loc, conf, variant)})``, cell = (method, backbone, dataset).

    ``variant`` names the paper's backbone where it only shares our backbone's name, else None.
    """
    text = papers_readme.read_text()
    maxboxacc = {}
    header, *rows = markdown_rows(text, "### wsolevaluation protocol")
    for row in rows[1:]:
        for column, value in zip(header[1:], row[1:]):
            dataset, backbone = column.split()
            key_dataset = {v: k for k, v in DATASET_COLUMN.items()}[dataset]
            maxboxacc[(row[0].lower(), BACKBONES[backbone.lower()], key_dataset)] = value
    top1 = {}
    header, *rows = markdown_rows(text, "### Classic metrics")
    for row in rows[1:]:
        cells = dict(zip(header, row))
        method = re.sub(r"\s*\(.*\)", "", cells["Method"]).lower()
        backbones = [b.strip().lower() for b in cells["Backbone"].split("/")]
        for dataset, column in (("cub", "CUB Top-1"), ("ilsvrc", "IN Top-1")):
            values = [v.strip() for v in cells[column].split("/")]
            if values == ["?"]:  # one "?" for every backbone of the row: not read from the paper
                values = values * len(backbones)
            for backbone, value in zip(backbones, values if len(values) == len(backbones) else values[:1]):
                if backbone in BACKBONES and re.fullmatch(r"≈?[\d.]+|\?", value):
                    conf = confidence(cells["conf."], DATASET_COLUMN[dataset])
                    variant = VARIANT_BACKBONES.get(backbone)
                    top1[(method, BACKBONES[backbone], dataset)] = (value, conf, variant)
    return maxboxacc, top1


def protocol(recipe: Path) -> tuple[str, str]:
    """The recipe's ``# protocol:`` (``wsolevaluation`` or ``paper``) and the logged test metric to compare.

    wsolevaluation recipes: ``test/maxboxacc_v2`` (OpenImages: ``test/pxap``). Paper recipes: the paper's Top-1 Loc, i.e. the
    union-box metric where the recipe sets ``union_box_threshold`` (SPA, DANet's protocol; classified
    on ten crops where the recipe sets ``ten_crop``, as their evaluation scripts; DANet's with each
    level ranked on its own, ``top1_loc_union_levels``), else Top-1 Loc at the threshold chosen on val
    (the classic protocol).
    """
    text = recipe.read_text()
    match = re.search(r"^# protocol: (\w+)", text, re.M)
    if match is None:
        raise SystemExit(f"{recipe}: no '# protocol:' line in its header (add it to its source and rebuild)")
    if match.group(1) not in ("wsolevaluation", "paper"):
        raise SystemExit(f"{recipe}: '# protocol: {match.group(1)}' is neither wsolevaluation nor paper")
    if match.group(1) == "wsolevaluation":  # its OpenImages table is PxAP (masks), the others MaxBoxAccV2
        return "wsolevaluation", "`test/pxap`" if recipe.stem.endswith("_openimages") else "`test/maxboxacc_v2`"
    if re.search(r"^\s+union_box_threshold: [\d.]+", text, re.M):
        ten_crop = re.search(r"^\s+ten_crop: true", text, re.M)
        levels = "_levels" if recipe.stem.startswith("danet_") else ""  # DANet: each level ranked on its own
        return "paper", f"`test/top1_loc_union{levels}{'_ten_crop' if ten_crop else ''}`"
    return "paper", "`test/top1_loc_at_val_threshold`"


def table(papers_readme: Path) -> str:
    """The markdown table of every recipe in ``experiments/paper``."""
    maxboxacc, top1 = paper_targets(papers_readme)
    lines = [
        "| recipe | method | backbone | dataset | protocol | compare | wsolevaluation (MaxBoxAccV2; OpenImages: PxAP) | Top-1 Loc (paper) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for recipe in sorted((REPO / "experiments" / "paper").glob("*.yaml")):
        method, rest = recipe.stem.split("_", 1)
        backbone, dataset = rest.rsplit("_", 1)
        key = (method, backbone, dataset)
        kind, metric = protocol(recipe)
        box = maxboxacc.get(key, "—")
        if kind == "paper" and box != "—":
            box = f"({box}: wsolevaluation's own recipe, not this one)"
        loc = "—"
        if key in top1:
            value, conf, variant = top1[key]
            notes = ", ".join(note for note in ("unverified" if conf == "M" else conf, variant) if note)
            loc = "not available" if value == "?" else f"{value} ({notes})"
        lines.append(f"| `{recipe.name}` | {method} | {backbone} | {dataset} | {kind} | {metric} | {box} | {loc} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=Path, default=REPO.parent / "shared" / "papers" / "README.md",
                        help="the method notes' index with the reported numbers")
    print(table(parser.parse_args().papers))


if __name__ == "__main__":
    main()
