"""A run's settings from a YAML file and ``key=value`` overrides: defaults, then the file,
then the overrides (parsed as YAML), then the command line's flags, validated into one
:class:`~loes.pipeline.run.config.Config`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from loes.errors import LoesError
from loes.pipeline.run.config import Config

__all__ = ["load_config", "read_yaml"]


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise LoesError(f"cannot set {dotted!r}: {part!r} is not a section.")
    node[leaf] = value


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML settings file holds.

    Raises:
        LoesError: when the file cannot be read, is not YAML, or holds no mapping.
    """
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise LoesError(f"cannot read configuration {path}: {error.strerror}.") from error
    except yaml.YAMLError as error:
        raise LoesError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(loaded, dict):
        raise LoesError(f"{path} must hold a mapping of settings, got {type(loaded).__name__}.")
    return loaded


def load_config(
    path: str | Path | None = None, overrides: Any = (), values: dict[str, Any] | None = None
) -> Config:
    """Defaults, then the YAML file, then ``key=value`` overrides (values parsed as YAML), then
    ``values`` (dotted key to value, taken as given: the command line's flags, so that
    ``--out "run #1"`` or ``--out 007`` name that folder).

    Raises:
        LoesError: for an unreadable file, a malformed override, an unknown key or a bad value,
            naming the key and what is allowed, or a key given both as an override and by a flag
            with different values (among overrides, the last wins).

    Examples::

        >>> load_config(overrides=["training.epochs=2", "model.name=sfcn"]).training.epochs
        2
    """
    data: dict[str, Any] = {}
    if path is not None:
        _merge(data, read_yaml(path))
    given: dict[str, Any] = {}
    for override in overrides:
        key, sep, raw = override.partition("=")
        key = key.strip()
        if not sep or not key:
            raise LoesError(f"override {override!r} must look like key=value (training.epochs=3).")
        try:  # " #" would start a YAML comment: such a value is text (a folder "run #2")
            value = raw if " #" in raw else yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        given[key] = value  # the last wins, as when layering settings
        _set_dotted(data, key, value)
    for key, value in (values or {}).items():
        if key in given and given[key] != value:  # flag against setting: never guess
            raise LoesError(
                f"{key} is given twice, as {given[key]!r} and by its flag as {value!r}; keep one."
            )
        _set_dotted(data, key, value)
    return Config.from_dict(data)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
