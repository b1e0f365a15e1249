"""The change between two sessions of one subject by a run's paired networks: the later scan
rigidly registered onto the earlier one and subtracted
(:func:`loes.transforms.registered_subtraction`), read by each fold's paired change model
(:mod:`loes.pipeline.cross_validation.change_model`), averaged over the folds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from loes.errors import LoesError
from loes.pipeline.run.device import resolve_device
from loes.pipeline.run.predictions import CHANGE_RANGE
from loes.transforms import registered_subtraction

if TYPE_CHECKING:
    from loes.pipeline.predict.ensemble import FoldEnsemble

__all__ = ["PairedChange"]


class PairedChange:
    """``PairedChange(ensemble)(earlier, later)``: the predicted change (later minus earlier,
    Loes points, within [-34, 34]) between two rows of a predictions table (each with its
    ``image``), by the members' paired networks, each clipped and then averaged; with
    ``tta="flip"`` each network also reads the left-right mirror of the subtraction image.

    Each scan goes through the ensemble's preprocessing once, however many pairs it is in.

    Raises:
        LoesError: when no member has a paired network, or a pair's scans cannot be read or
            registered (naming them).
    """

    def __init__(
        self, ensemble: FoldEnsemble, tta: str = "flip", device: str | torch.device = "cpu"
    ) -> None:
        self.models = [m.change_model for m in ensemble.members if m.change_model is not None]
        if not self.models:
            raise LoesError(f"{ensemble.source}: no fold has a paired change model.")
        self.transform = ensemble.preprocessing
        self.flip_axis = ensemble.lr_axis if tta == "flip" else None
        self.device = resolve_device(device) if isinstance(device, str) else device
        self._images: dict[str, torch.Tensor] = {}

    def _image(self, path: str) -> torch.Tensor:
        if path not in self._images:
            self._images[path] = self.transform({"image": path})["image"]
        return self._images[path]

    @torch.no_grad()
    def __call__(self, earlier: pd.Series, later: pd.Series) -> float:
        try:
            change = registered_subtraction(
                self._image(str(earlier["image"])), self._image(str(later["image"]))
            )
        except Exception as error:  # a user's scans: name them, never a library traceback
            raise LoesError(
                f"cannot register {later['image']} onto {earlier['image']} for the paired "
                f"change model ({type(error).__name__}: {error})."
            ) from None
        x = change.as_tensor()[None].to(self.device)
        views = [x] if self.flip_axis is None else [x, x.flip(2 + self.flip_axis)]
        values = []
        for model in self.models:
            model.to(self.device).eval()
            values.append(np.mean([model(v).clamp(*CHANGE_RANGE).item() for v in views]))
        return float(np.mean(values))
