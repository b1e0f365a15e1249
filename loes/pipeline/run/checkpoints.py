"""The models a run saved: each finished fold's ``best.pt`` (the epoch model selection chose on
the fold's validation subjects), loaded with ``torch.load(weights_only=True)`` through
:meth:`loes.models.LoesModel.load`."""

from __future__ import annotations

import os
from pathlib import Path

from loes.errors import LoesError
from loes.models import LoesModel
from loes.pipeline.run.folder import load_run_config, run_dir_of

__all__ = ["load_fold_model"]


def load_fold_model(folder: str | os.PathLike) -> tuple[LoesModel, dict]:
    """The model a finished fold chose (``folder/best.pt``) and the checkpoint's other entries
    (``epoch``, ``val_mae``).

    Checkpoints written before models described themselves take their description from the
    run folder's ``config.yaml``.

    Raises:
        LoesError: when the fold has no ``best.pt``, or neither it nor the run describes it.
    """
    path = Path(folder) / "best.pt"
    if not path.is_file():
        raise LoesError(f"{path} does not exist; train the fold first (`loes cv`).")
    try:
        return LoesModel.load(path)
    except ValueError:
        config = load_run_config(run_dir_of(folder))
    return LoesModel.load(path, spec=config.model_spec())
