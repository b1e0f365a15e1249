"""One typed configuration for a cross-validation run, read from YAML and overridden by
``key=value`` pairs on the command line (``training.epochs=3 model.name=sfcn``)."""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from loes.errors import LoesError

__all__ = [
    "AugmentationConfig",
    "Config",
    "CrossValidationConfig",
    "DataConfig",
    "ModelConfig",
    "PreprocessingConfig",
    "TrainingConfig",
    "load_config",
]


@dataclass
class DataConfig:
    """Where the scans come from; ``source: null`` means the built-in synthetic cohort."""

    source: str | None = None
    format: Literal["manifest", "lab", "bids"] | None = None
    images_dir: str | None = None
    include_gd: bool = False
    synthetic_subjects: int = 66
    synthetic_seed: int = 0
    synthetic_resolution: float = 1.5  # the CPU main job; the network trains at 2 mm anyway
    synthetic_contrast: Literal["t1w", "t2w", "flair"] = "t1w"
    cache_dir: str = ".cache/loes"


@dataclass
class PreprocessingConfig:
    """The deterministic transforms, cached once per scan per run."""

    pixdim: tuple[float, float, float] = (2.0, 2.0, 2.0)
    spatial_size: tuple[int, int, int] = (72, 88, 72)
    orientation: str = "RAS"
    normalize: Literal["zscore", "percentile", "none"] = "zscore"
    bias_correction: bool = False
    register: bool = False
    cache: Literal["memory", "disk", "gpu"] = "memory"


@dataclass
class AugmentationConfig:
    """The random transforms, applied after the cache, fresh every epoch."""

    enabled: bool = True
    affine_prob: float = 0.5
    rotate_degrees: float = 5.0
    flip_prob: float = 0.5
    bias_prob: float = 0.2
    noise_prob: float = 0.2
    contrast_prob: float = 0.2
    elastic: bool = False


@dataclass
class ModelConfig:
    name: str = "alexnet3d"
    dropout: float | None = None  # None: the network's own default


@dataclass
class TrainingConfig:
    epochs: int = 10
    batch_size: int = 8
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    scheduler: Literal["cosine", "plateau", "onecycle", "none"] = "onecycle"
    loss: Literal["mse", "l1", "huber"] = "huber"
    reweight: Literal["none", "inverse", "lds"] = "none"
    grad_clip: float = 5.0
    patience: int = 10
    amp: bool = True
    num_workers: int = 0


@dataclass
class CrossValidationConfig:
    folds: int = 5
    repeats: int = 1
    val_fraction: float = 0.2
    by_site: bool = False
    splits_file: str | None = None


@dataclass
class Config:
    """Everything one run decided; saved as ``config.yaml`` in the run folder.

    The defaults are the CPU main job (``configs/cpu.yaml``): AlexNet3D at 2 mm, 5 folds.
    """

    out: str = "runs/synthetic"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    cv: CrossValidationConfig = field(default_factory=CrossValidationConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "configuration") -> Config:
        return _build(cls, data, where)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check and convert ``value`` to ``annotation``; the error names the key and the choices."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        problems = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except LoesError as error:
                problems.append(str(error))
        raise LoesError(problems[0])
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise LoesError(f"{where} must be one of {choices}, got {value!r}.")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise LoesError(f"{where} must be a list of {len(args)} values, got {value!r}.")
        return tuple(
            _coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise LoesError(f"{where} must be true or false, got {value!r}.")
    if annotation in (int, float):
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LoesError(f"{where} must be a number, got {value!r}.")
        if annotation is int and float(value) != int(value):
            raise LoesError(f"{where} must be a whole number, got {value!r}.")
        return annotation(value)
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise LoesError(f"{where} must be a string, got {value!r}.")
        return str(value)
    raise TypeError(f"unsupported annotation {annotation!r} for {where}")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise LoesError(f"{where} must be a mapping, got {data!r}.")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise LoesError(
            f"unknown key {where}.{unknown[0]}; valid keys there: {', '.join(sorted(known))}."
            if where != "configuration"
            else f"unknown key {unknown[0]!r}; valid top-level keys: {', '.join(sorted(known))}."
        )
    values = {}
    for name, value in data.items():
        key = name if where == "configuration" else f"{where}.{name}"
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value or {}, key)
        else:
            values[name] = _coerce(value, hint, key)
    config = cls(**values)
    _check_ranges(config, where)
    return config


_POSITIVE = {
    "synthetic_subjects",
    "synthetic_resolution",
    "epochs",
    "batch_size",
    "lr",
    "folds",
    "repeats",
    "patience",
}
_PROBABILITIES = {
    "affine_prob",
    "flip_prob",
    "bias_prob",
    "noise_prob",
    "contrast_prob",
    "val_fraction",
}


def _check_ranges(config: Any, where: str) -> None:
    prefix = "" if where == "configuration" else f"{where}."
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name in _POSITIVE and value <= 0:
            raise LoesError(f"{prefix}{f.name} must be positive, got {value!r}.")
        if f.name in _PROBABILITIES and not 0 <= value <= 1:
            raise LoesError(f"{prefix}{f.name} must be between 0 and 1, got {value!r}.")
        if f.name in {"weight_decay", "grad_clip", "num_workers"} and value < 0:
            raise LoesError(f"{prefix}{f.name} must not be negative, got {value!r}.")
    if isinstance(config, CrossValidationConfig):
        if config.folds < 2 and not config.by_site:
            raise LoesError(f"{prefix}folds must be at least 2, got {config.folds}.")
        if not 0 < config.val_fraction < 1:
            raise LoesError(
                f"{prefix}val_fraction must be between 0 and 1 (exclusive): early stopping and "
                f"model selection need inner validation subjects; got {config.val_fraction}."
            )
    if isinstance(config, PreprocessingConfig) and min(config.spatial_size) < 1:
        raise LoesError(f"{prefix}spatial_size must be positive, got {config.spatial_size}.")


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise LoesError(f"cannot set {dotted!r}: {part!r} is not a section.")
    node[leaf] = value


def load_config(path: str | Path | None = None, overrides: typing.Iterable[str] = ()) -> Config:
    """Defaults, then the YAML file, then ``key=value`` overrides (values parsed as YAML).

    Examples::

        >>> load_config(overrides=["training.epochs=2", "model.name=sfcn"]).training.epochs
        2
    """
    data: dict[str, Any] = Config().to_dict()
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except OSError as error:
            raise LoesError(f"cannot read configuration {path}: {error.strerror}.") from error
        except yaml.YAMLError as error:
            raise LoesError(f"{path} is not valid YAML: {error}") from error
        if not isinstance(loaded, dict):
            raise LoesError(f"{path} must hold a mapping of settings, got {type(loaded).__name__}.")
        _merge(data, loaded)
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise LoesError(f"override {override!r} must look like key=value (training.epochs=3).")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        _set_dotted(data, key.strip(), value)
    return Config.from_dict(data)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
