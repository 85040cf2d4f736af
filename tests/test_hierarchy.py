from __future__ import annotations

import csv
from pathlib import Path

import pytest

from wsol_lightning.data.datasets.synthetic import SyntheticGenerator
from wsol_lightning.hierarchy import ClassHierarchy, HierarchyError, load_hierarchy, shipped_hierarchies

SHARED_CUB = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "danet_hierarchy"
    / "CUB"
    / "species_family_order.csv"
)


def write_rows(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("level", "name", "parent"))
        writer.writerows(rows)
    return path


TOY = [("top", "a", ""), ("top", "b", ""), ("leaf", "x", "b"), ("leaf", "y", "a"), ("leaf", "z", "b")]


def test_load_from_file_levels_parents_names(tmp_path: Path) -> None:
    hierarchy = load_hierarchy(write_rows(tmp_path / "h.csv", TOY))
    assert hierarchy.level_names == ("top", "leaf")
    assert hierarchy.class_names == (("a", "b"), ("x", "y", "z"))
    assert hierarchy.parents == ((-1, -1), (1, 0, 1))
    assert hierarchy.ancestor_table() == [[1, 0, 1], [0, 1, 2]]


def test_round_trip_through_csv(tmp_path: Path) -> None:
    hierarchy = load_hierarchy("cub")
    hierarchy.to_csv(tmp_path / "cub.csv")
    again = ClassHierarchy.from_csv(tmp_path / "cub.csv")
    assert again.class_names == hierarchy.class_names and again.parents == hierarchy.parents


def test_shipped_cub_is_200_37_11_and_matches_the_shared_data() -> None:
    assert {"cub", "ilsvrc", "synthetic"} <= set(shipped_hierarchies())
    cub = load_hierarchy("cub")
    assert cub.level_sizes == (11, 37, 200) and cub.level_names == ("order", "family", "species")
    if not SHARED_CUB.is_file():
        pytest.skip("shared CUB hierarchy data not present")
    orders, families, _ = cub.ancestor_table()
    for row in csv.DictReader(SHARED_CUB.open()):
        species = int(row["species_id"])
        assert cub.class_names[2][species] == row["species_folder"]
        assert families[species] == int(row["family_id"]) and orders[species] == int(row["order_id"])


def test_shipped_ilsvrc_has_1000_synsets_in_sorted_wnid_order() -> None:
    ilsvrc = load_hierarchy("ilsvrc")
    assert ilsvrc.level_sizes[-1] == 1000 and ilsvrc.num_levels == 3
    assert list(ilsvrc.class_names[-1]) == sorted(ilsvrc.class_names[-1])


@pytest.mark.parametrize(("num_classes", "num_coarse"), [(8, 4), (16, 5)])
def test_synthetic_hierarchy_follows_the_generator(num_classes: int, num_coarse: int) -> None:
    name = "synthetic" if (num_classes, num_coarse) == (8, 4) else f"synthetic:{num_classes}:{num_coarse}"
    hierarchy = load_hierarchy(name)
    generator = SyntheticGenerator(num_classes=num_classes, num_coarse=num_coarse)
    assert hierarchy.ancestor_table()[0] == generator.coarse_labels
    assert hierarchy.level_sizes == (num_coarse, num_classes)


def test_select_levels_composes_parents() -> None:
    cub = load_hierarchy("cub")
    two = cub.select_levels(["order", "species"])
    assert two.level_sizes == (11, 200)
    assert two.ancestor_table()[0] == cub.ancestor_table()[0]
    with pytest.raises(HierarchyError, match="finest level 'species'"):
        cub.select_levels(["order", "family"])
    with pytest.raises(HierarchyError, match="genus"):
        cub.select_levels(["genus", "species"])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [("top", "a", ""), ("leaf", "x", "a"), ("leaf", "y", "")],
            "class 'y' at level 'leaf' has no parent",
        ),
        (
            [("top", "a", ""), ("leaf", "x", "a"), ("leaf", "y", "q")],
            "names parent 'q', which is not a class",
        ),
        ([("top", "a", "b"), ("top", "b", "a"), ("leaf", "x", "a")], "cycle: a -> b -> a"),
        (
            [("top", "a", ""), ("mid", "m", "a"), ("leaf", "x", "a")],
            "must be at the level directly above, 'mid'",
        ),
        ([("top", "a", ""), ("top", "b", ""), ("leaf", "x", "a")], r"\['b'\] at level 'top' have no child"),
        ([("top", "a", ""), ("leaf", "a", "a")], "class name 'a' appears twice"),
    ],
)
def test_bad_hierarchies_fail_with_a_clear_message(tmp_path: Path, rows: list, message: str) -> None:
    with pytest.raises(HierarchyError, match=message):
        load_hierarchy(write_rows(tmp_path / "bad.csv", rows))


def test_level_and_class_count_checks_name_the_key() -> None:
    cub = load_hierarchy("cub")
    with pytest.raises(HierarchyError, match="3 levels .* but level_units has 2 entries"):
        cub.check_num_levels(2, "level_units")
    with pytest.raises(
        HierarchyError, match="200 classes at its finest level 'species' but num_classes is 8"
    ):
        cub.check_num_classes(8)


def test_unknown_name_and_bad_header(tmp_path: Path) -> None:
    with pytest.raises(HierarchyError, match="neither a file nor a shipped hierarchy"):
        load_hierarchy("imaginary")
    bad = tmp_path / "h.csv"
    bad.write_text("child,parent\nx,a\n")
    with pytest.raises(HierarchyError, match="header level,name,parent"):
        load_hierarchy(bad)


def test_file_errors_name_the_line_of_the_row(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "h.csv", [("top", "a", ""), ("leaf", "x", "a"), ("leaf", "y", "")])
    with pytest.raises(HierarchyError, match=rf"hierarchy '{path}', line 4: class 'y' at level 'leaf' has no parent"):
        load_hierarchy(path)
    path = write_rows(tmp_path / "h.csv", [("top", "a", ""), ("leaf", "x", "a"), ("leaf", "x", "a")])
    with pytest.raises(HierarchyError, match=r"class name 'x' appears twice \(line 4\)"):
        load_hierarchy(path)


def test_a_spreadsheet_byte_order_mark_and_padded_header_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufefflevel, name, parent\r\ntop,a,\r\nleaf,x,a\r\n".encode("utf-8"))
    assert load_hierarchy(path).class_names == (("a",), ("x",))


def test_shipped_hierarchies_are_files_of_the_documented_format() -> None:
    data = Path(__file__).resolve().parents[1] / "src" / "wsol_lightning" / "hierarchy" / "data"
    for name in shipped_hierarchies():
        by_name, by_path = load_hierarchy(name), load_hierarchy(data / f"{name}.csv")
        assert (by_name.level_names, by_name.class_names, by_name.parents) == (
            by_path.level_names,
            by_path.class_names,
            by_path.parents,
        )
    # the README's example for a 10-class CUB-layout set is a valid file
    readme = (data / "README.md").read_text()
    example = readme.split("```csv\n", 1)[1].split("```", 1)[0]
    rows = list(csv.reader(example.splitlines()))
    assert rows[0] == ["level", "name", "parent"]
    hierarchy = ClassHierarchy.from_rows([tuple(r) for r in rows[1:]], "readme example")
    assert hierarchy.level_sizes == (2, 10) and hierarchy.class_names[1][9] == "010.Species_10"
