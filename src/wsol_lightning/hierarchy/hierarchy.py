"""Class hierarchies as data: ``ClassHierarchy`` and its CSV file format.

A hierarchy has ``L`` levels ordered from the coarsest to the finest (DANet on CUB: order,
family, species); the finest level is the dataset's label space. Every class below the coarsest
level has exactly one parent in the level directly above it.

File format (CSV, UTF-8, one row per class, header ``level,name,parent``; the full description
is ``hierarchy/data/README.md``): levels appear from the coarsest to the finest, classes of a
level in their index order, and ``parent`` names a class of the level above (empty at the
coarsest level). Names are unique over the whole file. The finest level's rows are the dataset's
classes in label order (row ``k`` of the finest level is label ``k``)::

    level,name,parent
    order,order_0,
    family,family_0,order_0
    species,001.Black_footed_Albatross,family_0

The shipped hierarchies (``cub``, ``ilsvrc``, ``synthetic``) are files of this format.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wsol_lightning.errors import ConfigError

#: Header of the hierarchy CSV files.
CSV_FIELDS = ("level", "name", "parent")


class HierarchyError(ConfigError):
    """A class hierarchy that is not a proper leveled tree, or does not fit the model."""


@dataclass(frozen=True)
class ClassHierarchy:
    """A leveled class tree, coarsest level first.

    Attributes:
        name: where the hierarchy came from (a shipped name or a file path), used in messages.
        level_names: the level names, coarsest first.
        class_names: the class names of every level, in class-index order.
        parents: ``parents[l][i]``: index in level ``l - 1`` of the parent of class ``i`` of level
            ``l``; ``-1`` at level 0.
    """

    name: str
    level_names: tuple[str, ...]
    class_names: tuple[tuple[str, ...], ...]
    parents: tuple[tuple[int, ...], ...]

    @property
    def num_levels(self) -> int:
        return len(self.level_names)

    @property
    def level_sizes(self) -> tuple[int, ...]:
        """Number of classes of every level, coarsest first."""
        return tuple(len(names) for names in self.class_names)

    @property
    def num_fine_classes(self) -> int:
        return self.level_sizes[-1]

    def ancestor_table(self) -> list[list[int]]:
        """``table[l][c]``: the class at level ``l`` that contains finest class ``c`` (last row is ``c``)."""
        table = [list(range(self.num_fine_classes))]
        for level in range(self.num_levels - 1, 0, -1):
            table.insert(0, [self.parents[level][c] for c in table[0]])
        return table

    def select_levels(self, level_names: Sequence[str]) -> ClassHierarchy:
        """The hierarchy restricted to some levels (parents become the nearest kept ancestors).

        The finest level must be kept: it is the label space.
        """
        unknown = [n for n in level_names if n not in self.level_names]
        if unknown:
            raise HierarchyError(
                f"levels {unknown} are not levels of hierarchy {self.name!r}, which has {list(self.level_names)}"
            )
        indices = sorted({self.level_names.index(n) for n in level_names})
        if indices[-1] != self.num_levels - 1:
            raise HierarchyError(
                f"levels must include the finest level {self.level_names[-1]!r} of hierarchy {self.name!r} "
                f"(the label space), got {list(level_names)}"
            )
        parents: list[tuple[int, ...]] = []
        for position, level in enumerate(indices):
            if position == 0:
                parents.append(tuple(-1 for _ in self.class_names[level]))
                continue
            above = indices[position - 1]
            mapping = []
            for c in range(self.level_sizes[level]):
                ancestor, current = c, level
                while current > above:
                    ancestor, current = self.parents[current][ancestor], current - 1
                mapping.append(ancestor)
            parents.append(tuple(mapping))
        return ClassHierarchy(
            self.name,
            tuple(self.level_names[i] for i in indices),
            tuple(self.class_names[i] for i in indices),
            tuple(parents),
        )

    def check_num_levels(self, num_levels: int, what: str) -> None:
        """Raise a :class:`HierarchyError` unless the hierarchy has ``num_levels`` levels."""
        if num_levels != self.num_levels:
            raise HierarchyError(
                f"hierarchy {self.name!r} has {self.num_levels} levels {list(self.level_names)} but {what} has "
                f"{num_levels} entries: give one entry per level, coarsest first"
            )

    def check_num_classes(self, num_classes: int, what: str = "num_classes", hint: str = "") -> None:
        """Raise a :class:`HierarchyError` unless the finest level has ``num_classes`` classes.

        The one-line message names both counts; ``hint`` (e.g. ``"; give ..."``) is appended.
        """
        if num_classes != self.num_fine_classes:
            raise HierarchyError(
                f"hierarchy {self.name!r} has {self.num_fine_classes} classes at its finest level "
                f"{self.level_names[-1]!r} but {what} is {num_classes}: the finest level must be the dataset's labels"
                f"{hint}"
            )

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_rows(
        cls, rows: Sequence[tuple[str, str, str]], name: str, line_numbers: Sequence[int] | None = None
    ) -> ClassHierarchy:
        """Build and validate a hierarchy from ``(level, class name, parent name)`` rows (see module doc).

        ``line_numbers``: the file line of every row (messages then say ``line N``, else ``row N``).
        """
        if not rows:
            raise HierarchyError(f"hierarchy {name!r} has no classes")
        place = [f"line {n}" for n in line_numbers] if line_numbers is not None else None
        level_names: list[str] = []
        members: dict[str, list[str]] = {}
        level_of: dict[str, str] = {}
        parent_of: dict[str, str] = {}
        where: dict[str, str] = {}
        for line, (level, cls_name, parent) in enumerate(rows, start=1):
            at = place[line - 1] if place is not None else f"row {line}"
            level, cls_name, parent = level.strip(), cls_name.strip(), parent.strip()
            if not level or not cls_name:
                raise HierarchyError(
                    f"hierarchy {name!r}, class {at}: level and name must not be empty"
                )
            if cls_name in level_of:
                raise HierarchyError(
                    f"hierarchy {name!r}: class name {cls_name!r} appears twice ({at})"
                )
            if level not in members:
                if level_names and level in level_names:
                    raise HierarchyError(
                        f"hierarchy {name!r}: rows of level {level!r} are not contiguous ({at})"
                    )
                level_names.append(level)
                members[level] = []
            members[level].append(cls_name)
            level_of[cls_name] = level
            parent_of[cls_name] = parent
            where[cls_name] = f"hierarchy {name!r}, {at}" if place is not None else f"hierarchy {name!r}"
        for cls_name, parent in parent_of.items():
            if parent and parent not in level_of:
                raise HierarchyError(
                    f"{where[cls_name]}: class {cls_name!r} names parent {parent!r}, which is not a class of the "
                    "hierarchy"
                )
        _check_no_cycle(parent_of, name)
        root = level_names[0]
        parents: list[tuple[int, ...]] = []
        for depth, level in enumerate(level_names):
            indices = []
            for cls_name in members[level]:
                parent = parent_of[cls_name]
                if depth == 0:
                    if parent:
                        raise HierarchyError(
                            f"{where[cls_name]}: class {cls_name!r} of the coarsest level {root!r} has parent "
                            f"{parent!r}; classes of the coarsest level have none"
                        )
                    indices.append(-1)
                    continue
                above = level_names[depth - 1]
                if not parent:
                    raise HierarchyError(
                        f"{where[cls_name]}: class {cls_name!r} at level {level!r} has no parent; every class "
                        f"below the coarsest level {root!r} needs one at level {above!r}"
                    )
                if level_of[parent] != above:
                    raise HierarchyError(
                        f"{where[cls_name]}: parent {parent!r} of class {cls_name!r} (level {level!r}) is at "
                        f"level {level_of[parent]!r}; it must be at the level directly above, {above!r}"
                    )
                indices.append(members[above].index(parent))
            parents.append(tuple(indices))
        for depth in range(len(level_names) - 1):
            used = set(parents[depth + 1])
            childless = [n for i, n in enumerate(members[level_names[depth]]) if i not in used]
            if childless:
                raise HierarchyError(
                    f"hierarchy {name!r}: classes {childless[:5]} at level {level_names[depth]!r} have no child at "
                    f"level {level_names[depth + 1]!r}"
                )
        return cls(name, tuple(level_names), tuple(tuple(members[lv]) for lv in level_names), tuple(parents))

    @classmethod
    def from_parent_lists(
        cls,
        level_names: Sequence[str],
        class_names: Sequence[Sequence[str]],
        parents: Sequence[Sequence[int]],
        name: str,
    ) -> ClassHierarchy:
        """Build from per-level names and parent indices (``parents[l][i]`` indexes level ``l - 1``)."""
        if not (len(level_names) == len(class_names) == len(parents) + 1):
            raise HierarchyError(
                f"hierarchy {name!r}: {len(level_names)} level names, {len(class_names)} name lists and "
                f"{len(parents)} parent lists (need one parent list per level below the coarsest)"
            )
        rows = [(level_names[0], n, "") for n in class_names[0]]
        for depth in range(1, len(level_names)):
            above = class_names[depth - 1]
            if len(parents[depth - 1]) != len(class_names[depth]):
                raise HierarchyError(
                    f"hierarchy {name!r}: level {level_names[depth]!r} has {len(class_names[depth])} classes but "
                    f"{len(parents[depth - 1])} parents"
                )
            for cls_name, parent in zip(class_names[depth], parents[depth - 1]):
                parent_name = above[parent] if 0 <= parent < len(above) else ""
                rows.append((level_names[depth], cls_name, parent_name))
        return cls.from_rows(rows, name)

    @classmethod
    def from_csv(cls, path: str | Path) -> ClassHierarchy:
        """Read a hierarchy file (see the module docstring for the format)."""
        path = Path(path)
        rows, lines = [], []
        with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: a spreadsheet's byte-order mark
            reader = csv.DictReader(handle)
            fieldnames = [f.strip() for f in reader.fieldnames] if reader.fieldnames is not None else None
            if fieldnames is None or tuple(fieldnames) != CSV_FIELDS:
                raise HierarchyError(
                    f"hierarchy file {str(path)!r} must have the header {','.join(CSV_FIELDS)}, got {reader.fieldnames}"
                )
            reader.fieldnames = fieldnames
            for r in reader:
                rows.append((r["level"] or "", r["name"] or "", r["parent"] or ""))
                lines.append(reader.line_num)
        return cls.from_rows(rows, str(path), lines)

    def to_csv(self, path: str | Path) -> None:
        """Write the hierarchy in the file format read by :meth:`from_csv`."""
        with Path(path).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(CSV_FIELDS)
            for depth, level in enumerate(self.level_names):
                above = self.class_names[depth - 1] if depth else ()
                for cls_name, parent in zip(self.class_names[depth], self.parents[depth]):
                    writer.writerow((level, cls_name, above[parent] if depth else ""))


def _check_no_cycle(parent_of: dict[str, str], name: str) -> None:
    """Follow parent links from every class; a class met twice on one walk closes a cycle."""
    finished: set[str] = set()
    for start in parent_of:
        walk: list[str] = []
        node = start
        while node and node not in finished:
            if node in walk:
                loop = walk[walk.index(node) :] + [node]
                raise HierarchyError(f"hierarchy {name!r} has a cycle: {' -> '.join(loop)}")
            walk.append(node)
            node = parent_of[node]
        finished.update(walk)


def synthetic_hierarchy(num_classes: int = 8, num_coarse: int = 4) -> ClassHierarchy:
    """The synthetic set's two levels: fine class ``c`` is in group ``c * num_coarse // num_classes``.

    Same rule as :attr:`wsol_lightning.data.datasets.synthetic.SyntheticGenerator.coarse_labels`.
    """
    from wsol_lightning.data.datasets.synthetic import SyntheticGenerator

    generator = SyntheticGenerator(num_classes=num_classes, num_coarse=num_coarse, length=1)
    coarse = generator.coarse_labels
    return ClassHierarchy.from_parent_lists(
        ("group", "class"),
        ([f"group{g}" for g in range(num_coarse)], generator.class_names()),
        (coarse,),
        name=f"synthetic:{num_classes}:{num_coarse}",
    )


#: Directory of the hierarchies shipped with the package (``<name>.csv``).
SHIPPED_DIR = Path(__file__).resolve().parent / "data"


def shipped_hierarchies() -> list[str]:
    """Names accepted by :func:`load_hierarchy` besides file paths."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.csv"))


def load_hierarchy(path_or_name: str | Path) -> ClassHierarchy:
    """Load a shipped hierarchy by name (``"cub"``, ``"ilsvrc"``, ``"synthetic"``) or a CSV file.

    ``"synthetic:<num_classes>:<num_coarse>"`` builds the synthetic set's hierarchy for other sizes
    (``"synthetic"`` is the shipped 8-class / 4-group file, the datamodule's default).
    """
    text = str(path_or_name)
    if text.startswith("synthetic:"):
        try:
            _, num_classes, num_coarse = text.split(":")
            return synthetic_hierarchy(int(num_classes), int(num_coarse))
        except ValueError as err:
            raise HierarchyError(
                f"hierarchy {text!r}: expected 'synthetic:<num_classes>:<num_coarse>' ({err})"
            ) from None
    shipped = SHIPPED_DIR / f"{text.lower()}.csv"
    if shipped.is_file() and not Path(text).suffix:
        hierarchy = ClassHierarchy.from_csv(shipped)
        return ClassHierarchy(text.lower(), hierarchy.level_names, hierarchy.class_names, hierarchy.parents)
    path = Path(text).expanduser()
    if not path.is_file():
        raise HierarchyError(
            f"hierarchy {text!r} is neither a file nor a shipped hierarchy ({', '.join(shipped_hierarchies())}, "
            "or synthetic:<num_classes>:<num_coarse>)"
        )
    return ClassHierarchy.from_csv(path)
