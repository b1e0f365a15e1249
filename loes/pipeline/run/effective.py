"""The values a run's settings took in effect: what ``auto`` and ``null`` became, and settings
the device ignores (mixed precision on a CPU).

``config.yaml`` stays the settings as given, because it is the run's recipe: ``loes cv
--config RUN/config.yaml`` re-runs it, SLURM array tasks read it on whatever node they land on,
and resuming compares it with the settings given again. A value in effect depends on the machine
(``training.amp: true`` is mixed precision on a GPU, nothing on a CPU), so writing it into the
recipe would change what the file means on the next machine. :func:`write_run_config` therefore
writes the settings unchanged and says, as a YAML comment on each line concerned, what was in
effect; :func:`effective_values` gives the same facts as data (the report shows them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import yaml

from loes.io import write_text
from loes.pipeline.run.config import Config
from loes.pipeline.run.device import c_compiler, compiles
from loes.pipeline.run.folder import CONFIG_FILE

__all__ = [
    "annotated_yaml",
    "effective_values",
    "lookup",
    "network_dropout",
    "write_run_config",
]

_DROPOUT = (
    torch.nn.Dropout,
    torch.nn.Dropout1d,
    torch.nn.Dropout2d,
    torch.nn.Dropout3d,
    torch.nn.AlphaDropout,
    torch.nn.FeatureAlphaDropout,
)


def lookup(data: Any, dotted: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"`` in a plain settings dict (``config.yaml``,
    ``environment.json``), or ``None`` where a level is missing or not a dict."""
    for key in dotted.split("."):
        data = data.get(key) if isinstance(data, dict) else None
    return data


def network_dropout(name: str, spatial_size: list[int] | tuple[int, ...], **kwargs: Any) -> Any:
    """The dropout probability of the registered network ``name`` built with ``kwargs``: one
    float, a sorted list when its layers differ, ``0.0`` when it has no dropout layer, or
    ``None`` when it cannot be built (an unknown name). The network is built on PyTorch's
    ``meta`` device: no memory, no weights.

    Examples::

        >>> network_dropout("alexnet3d", [72, 88, 72])
        0.2
    """
    from loes.models import get_network

    try:
        with torch.device("meta"):
            network = get_network(name, spatial_size, **kwargs)
    except (ValueError, TypeError, RuntimeError):
        return None
    found = sorted(
        {
            float(m.p)
            for m in network.modules()
            if isinstance(m, torch.nn.modules.dropout._DropoutNd)
        }
    )
    if not found:
        return 0.0
    return found[0] if len(found) == 1 else found


def effective_values(
    config: Config | dict[str, Any], device: torch.device | str | None
) -> dict[str, dict[str, Any]]:
    """What the settings of ``config`` were in effect on ``device`` (``None``: not known yet,
    as for ``loes slurm`` on a login node), for the settings whose value in effect the setting
    does not say: ``{dotted key: {"setting", "effective", "why"}}``.

    - ``device``: what ``auto`` became (``cpu`` or ``cuda``);
    - ``training.amp``: ``false`` when the run trains off CUDA (mixed precision is CUDA-only,
      :func:`loes.pipeline.run.device.autocast`) or with ``training.deterministic`` (known
      before the device is);
    - ``training.memory_format``: what ``auto`` became (``channels_last`` on a CPU,
      ``contiguous`` on CUDA, :func:`loes.pipeline.run.device.memory_format`);
    - ``training.compile``: what ``auto`` became (:func:`loes.pipeline.run.device.compiles`);
    - ``model.dropout``: what ``null`` became, the registered network's own dropout
      (:func:`network_dropout`).

    ``config`` is a :class:`Config` or its ``to_dict()`` (a report reading ``config.yaml``).
    """
    settings = config.to_dict() if isinstance(config, Config) else config
    kind = None if device is None else torch.device(device).type
    found: dict[str, dict[str, Any]] = {}
    if kind is not None and lookup(settings, "device") == "auto":
        seen = "saw a CUDA GPU" if kind == "cuda" else "saw no CUDA GPU"
        found["device"] = {"setting": "auto", "effective": kind, "why": f"PyTorch {seen}"}
    if kind is not None and kind != "cuda" and lookup(settings, "training.amp") is True:
        found["training.amp"] = {
            "setting": True,
            "effective": False,
            "why": f"mixed precision runs on CUDA only; this run trained on {kind}",
        }
    elif lookup(settings, "training.amp") is True and lookup(settings, "training.deterministic"):
        found["training.amp"] = {
            "setting": True,
            "effective": False,
            "why": "training.deterministic turns mixed precision off",
        }
    if kind is not None and lookup(settings, "training.memory_format") == "auto":
        found["training.memory_format"] = {
            "setting": "auto",
            "effective": "channels_last" if kind == "cpu" else "contiguous",
            "why": f"the layout measured fastest on {kind}",
        }
    if kind is not None and lookup(settings, "augmentation.where") == "auto":
        elastic = bool(lookup(settings, "augmentation.elastic"))
        batch = kind == "cuda" and not elastic
        found["augmentation.where"] = {
            "setting": "auto",
            "effective": "batch" if batch else "loader",
            "why": (
                "batched on the GPU"
                if batch
                else "the elastic deformation has no batch version"
                if elastic
                else f"measured no faster batched on {kind}"
            ),
        }
    if kind is not None and lookup(settings, "training.compile") == "auto":
        found["training.compile"] = _compile_in_effect(
            torch.device(kind), bool(lookup(settings, "training.deterministic"))
        )
    name, size = (
        lookup(settings, "model.name"),
        lookup(settings, "preprocessing.spatial_size"),
    )
    if lookup(settings, "model") is not None and lookup(settings, "model.dropout") is None and name:
        dropout = network_dropout(name, size) if size else None
        if dropout is not None:
            found["model.dropout"] = {
                "setting": None,
                "effective": dropout,
                "why": f"the registered {name}'s own dropout",
            }
    return found


def _compile_in_effect(device: torch.device, deterministic: bool) -> dict[str, Any]:
    on = compiles(device, "auto", deterministic)
    if c_compiler(device) is None:
        why = "no compiler for torch.compile was found"
    elif device.type == "cuda":
        why = "training.deterministic" if deterministic else "expected to be faster on cuda"
    else:
        why = f"measured no faster on {device.type}"
    return {"setting": "auto", "effective": "on" if on else "off", "why": why}


def _comment(value: dict[str, Any]) -> str:
    effective = yaml.safe_dump(value["effective"], default_flow_style=True).strip()
    effective = effective.removesuffix("\n...").removesuffix("...").strip()
    return f"  # in effect: {effective} ({value['why']})"


def annotated_yaml(config: Config, device: torch.device | str | None) -> str:
    """``config.to_yaml()`` with a comment on each line whose value in effect differs
    (:func:`effective_values`), e.g. ``amp: true  # in effect: false (mixed precision runs on
    CUDA only; this run trained on cpu)``. It loads as exactly the same settings."""
    effective = effective_values(config, device)
    lines, path = [], []
    for line in config.to_yaml().splitlines():
        stripped = line.lstrip(" ")
        depth = (len(line) - len(stripped)) // 2
        if stripped.startswith("- ") or ":" not in stripped:
            lines.append(line)
            continue
        key = stripped.split(":", 1)[0]
        path = [*path[:depth], key]
        value = effective.get(".".join(path))
        lines.append(line + _comment(value) if value and not stripped.endswith(":") else line)
    return "\n".join(lines) + "\n"


def write_run_config(
    run_dir: str | os.PathLike, config: Config, device: torch.device | str | None
) -> Path:
    """Write ``run_dir/config.yaml`` (atomically) as :func:`annotated_yaml`: the settings as
    given, with what was in effect on ``device`` as comments. Returns the path."""
    path = Path(run_dir) / CONFIG_FILE
    write_text(path, annotated_yaml(config, device))
    return path
