"""The canonical table of the Loes score's items (Loes et al. 1994, AJNR 15:1761-1766).

Every module that names a Loes item (manifests, the synthetic cohort, reports) takes the
names from here, so one column always means one thing.

Each item scores 0 (normal), 0.5 (one side) or 1 (both sides), except global atrophy,
which scores 0-3. The maxima add up to 34.

Examples::

    >>> from loes.data.loes_items import ITEM_COLUMNS, MAX_SCORE, item
    >>> ITEM_COLUMNS[0], MAX_SCORE
    ('parieto_occipital_periventricular', 34.0)
    >>> item("global_atrophy").max
    3.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AREAS",
    "ATROPHY_ITEMS",
    "ITEMS",
    "ITEM_COLUMNS",
    "LESION_ITEMS",
    "MAX_LOES_SCORE",
    "MAX_SCORE",
    "LoesItem",
    "item",
    "lesion_label",
    "lesion_label_names",
]


@dataclass(frozen=True)
class LoesItem:
    """One scored item: its area, its name within the area, its column name and maximum.

    ``kind`` says how it shows on MRI: ``"lesion"`` (signal change in white matter or
    nuclei) or ``"atrophy"`` (volume loss). ``sided`` items score 0.5 per hemisphere.
    """

    area: str
    name: str
    column: str
    max: float
    kind: Literal["lesion", "atrophy"]
    sided: bool = True


def _items() -> tuple[LoesItem, ...]:
    rows: list[tuple[str, str, str, float, str, bool]] = []
    for area in ("parieto_occipital", "anterior_temporal", "frontal"):
        for name in ("periventricular", "central", "subcortical"):
            rows.append((area, name, f"{area}_{name}", 1.0, "lesion", True))
        rows.append((area, "atrophy", f"{area}_atrophy", 1.0, "atrophy", True))
    rows += [
        ("corpus_callosum", "splenium", "corpus_callosum_splenium", 1.0, "lesion", True),
        ("corpus_callosum", "genu", "corpus_callosum_genu", 1.0, "lesion", True),
        (
            "corpus_callosum",
            "splenium_atrophy",
            "corpus_callosum_splenium_atrophy",
            1.0,
            "atrophy",
            True,
        ),
        ("corpus_callosum", "genu_atrophy", "corpus_callosum_genu_atrophy", 1.0, "atrophy", True),
    ]
    for name in ("optic_radiation", "meyers_loop", "lateral_geniculate", "optic_tract"):
        rows.append(("visual_pathway", name, f"visual_pathway_{name}", 1.0, "lesion", True))
    for name in ("medial_geniculate", "brachium_inferior_colliculus", "lateral_lemniscus", "pons"):
        rows.append(("auditory_pathway", name, f"auditory_pathway_{name}", 1.0, "lesion", True))
    for name in ("internal_capsule", "brainstem"):
        rows.append(("projection_fibres", name, f"projection_fibres_{name}", 1.0, "lesion", True))
    rows += [
        ("cerebellum", "white_matter", "cerebellum_white_matter", 1.0, "lesion", True),
        ("cerebellum", "atrophy", "cerebellum_atrophy", 1.0, "atrophy", True),
        ("basal_ganglia", "basal_ganglia", "basal_ganglia", 1.0, "lesion", True),
        ("anterior_thalamus", "anterior_thalamus", "anterior_thalamus", 1.0, "lesion", True),
        ("global_atrophy", "global_atrophy", "global_atrophy", 3.0, "atrophy", False),
        ("brainstem_atrophy", "brainstem_atrophy", "brainstem_atrophy", 1.0, "atrophy", True),
    ]
    return tuple(LoesItem(*row) for row in rows)  # type: ignore[arg-type]


MAX_LOES_SCORE: float = 34.0
"""The highest total Loes score: the sum of every item's maximum."""

ITEMS: tuple[LoesItem, ...] = _items()
"""All 34 points' worth of items, in score-sheet order."""

ITEM_COLUMNS: tuple[str, ...] = tuple(i.column for i in ITEMS)
LESION_ITEMS: tuple[LoesItem, ...] = tuple(i for i in ITEMS if i.kind == "lesion")
ATROPHY_ITEMS: tuple[LoesItem, ...] = tuple(i for i in ITEMS if i.kind == "atrophy")
AREAS: tuple[str, ...] = tuple(dict.fromkeys(i.area for i in ITEMS))
MAX_SCORE: float = float(sum(i.max for i in ITEMS))
"""The items' maxima summed; equal to ``MAX_LOES_SCORE`` (checked below)."""

_BY_COLUMN = {i.column: i for i in ITEMS}
assert MAX_SCORE == MAX_LOES_SCORE, MAX_SCORE


def item(column: str) -> LoesItem:
    """The item with this column name; ``KeyError`` names the valid ones."""
    try:
        return _BY_COLUMN[column]
    except KeyError:
        raise KeyError(
            f"unknown Loes item {column!r}; known items: {', '.join(ITEM_COLUMNS)}"
        ) from None


def lesion_label(column: str, side: Literal["left", "right"]) -> int:
    """Label value of a lesion item's side in lesion masks: 2i+1 left, 2i+2 right (i from 0).

    Examples::

        >>> lesion_label("parieto_occipital_periventricular", "right")
        2
    """
    index = [i.column for i in LESION_ITEMS].index(column)
    return 2 * index + (1 if side == "left" else 2)


def lesion_label_names() -> dict[int, str]:
    """``{label: "column_left" | "column_right"}`` for every lesion mask label."""
    return {
        lesion_label(i.column, side): f"{i.column}_{side}"
        for i in LESION_ITEMS
        for side in ("left", "right")
    }
