"""Class hierarchies (coarse-to-fine label trees) as data files, for DANet's HDA."""

from wsol_lightning.hierarchy.hierarchy import (
    ClassHierarchy,
    HierarchyError,
    load_hierarchy,
    shipped_hierarchies,
    synthetic_hierarchy,
)

__all__ = ["ClassHierarchy", "HierarchyError", "load_hierarchy", "shipped_hierarchies", "synthetic_hierarchy"]
