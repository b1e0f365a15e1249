"""One cross-validation fold: the subjects of its training, inner validation and test sides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from loes.errors import LoesError

__all__ = ["SIDES", "Fold", "Side"]

Side = Literal["train", "val", "test"]
SIDES: tuple[Side, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class Fold:
    """One fold: sorted subject ids for training, inner validation and testing (disjoint)."""

    repeat: int
    fold: int
    train: list[str]
    val: list[str]
    test: list[str]

    def subjects(self, side: Side) -> list[str]:
        """The subject ids on ``side`` ("train", "val" or "test")."""
        if side not in SIDES:
            raise LoesError(f"unknown side {side!r}; use one of {', '.join(SIDES)}.")
        return getattr(self, side)

    def scans(self, table: pd.DataFrame, side: Side) -> pd.DataFrame:
        """The rows of ``table`` (every scan) whose subject is on ``side``, in table order.

        Examples::

            >>> test_rows = splits.folds[0].scans(table, "test")  # doctest: +SKIP
        """
        return table[table["subject"].astype(str).isin(set(self.subjects(side)))]

    @property
    def name(self) -> str:
        """``repeat 0 fold 3``, for messages and folder names."""
        return f"repeat {self.repeat} fold {self.fold}"
