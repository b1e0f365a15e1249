"""One typed configuration for a cross-validation run, read from YAML and overridden by
``key=value`` pairs on the command line (``training.epochs=3 model.name=sfcn``).

Each section is a pydantic model with unknown keys forbidden; constraints live on the fields
and every field is documented (with its unit) where it is declared. The ``preprocessing`` and
``augmentation`` sections take their field names and defaults from the signatures of
:func:`loes.transforms.preprocessing` and :func:`loes.transforms.augmentation`, and call them
with their fields (:meth:`PreprocessingConfig.preset_kwargs`): one source of those settings.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from loes.errors import LoesError
from loes.pipeline.run.config_errors import table_settings_without_source, validation_message
from loes.transforms import augmentation, preprocessing

__all__ = [
    "NOT_DECIDING_RESULTS",
    "AugmentationConfig",
    "Config",
    "CrossValidationConfig",
    "DataConfig",
    "ModelConfig",
    "PreprocessingConfig",
    "ReportConfig",
    "TrainingConfig",
]


def unit(name: str) -> Any:
    """A setting's unit, kept in its JSON schema and shown by ``loes settings``."""
    return Field(json_schema_extra={"unit": name})


MM, VOXELS, SCANS, EPOCHS, ZSCORE = map(unit, ("mm", "voxels", "scans", "epochs", "z-score units"))
Positive = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
Triple = tuple[Positive, Positive, Positive]
#: a voxel size in mm per axis, or one number for all three (as the presets take it)
Spacing = Annotated[
    Triple, BeforeValidator(lambda v: (v, v, v) if isinstance(v, int | float) else v)
]

#: dotted settings that change where or how fast a run goes, or how its results are reported,
#: never the results: a run folder may be resumed (or re-reported) with other values of these
NOT_DECIDING_RESULTS = (
    "out",
    "device",
    "data.cache_dir",
    "preprocessing.cache",
    "training.memory_format",
    "report",
)


def _preset_default(preset, name: str) -> Any:
    """The default of argument ``name`` of a preset function, as YAML can hold it."""
    default = inspect.signature(preset).parameters[name].default
    return tuple(default) if isinstance(default, list) else default


_pre, _aug = (
    functools.partial(_preset_default, preset) for preset in (preprocessing, augmentation)
)


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        use_attribute_docstrings=True,
        validate_default=True,
        coerce_numbers_to_str=True,
    )


class DataConfig(_Section):
    """Where the scans come from; ``source: null`` means the built-in synthetic cohort."""

    source: str | None = None
    """Manifest CSV/TSV, the lab's CSV or a BIDS root; null: the built-in synthetic cohort."""
    format: Literal["manifest", "lab", "bids"] | None = None
    """Input format; null: told from the source (a folder is BIDS, a table by its columns)."""
    images_dir: str | None = None
    """Folder that relative image paths of a manifest, or the lab's image names, are read from."""
    include_gd: bool = False
    """Keep post-contrast (gadolinium) sessions; they are left out by default."""
    suffix: str = "T1w"
    """BIDS suffix of the images to read (``T1w``, ``FLAIR``, ``T2w``)."""
    synthetic_subjects: Annotated[PositiveInt, unit("subjects")] = 66
    """Subjects of the built-in synthetic cohort."""
    synthetic_seed: int = 0
    """Seed of the built-in synthetic cohort."""
    synthetic_resolution: Annotated[Positive, MM] = 1.5
    """Typical voxel size of the synthetic scans, in mm (training resamples to ``pixdim``)."""
    synthetic_contrast: Literal["t1w", "t2w", "flair"] = "t1w"
    """Contrast of the synthetic scans."""
    synthetic_whole_head: bool = False
    """Synthetic scans as acquired: skull, scalp, eyes and neck in noisy air around the brain
    (pydeface's mean head warped with each subject), each with its brain mask, instead of
    skull-stripped brains."""
    cache_dir: str = ".cache/loes"
    """Folder of the generated synthetic cohort and of the disk cache
    (``preprocessing.cache: disk``) of preprocessed scans and registered pairs of sessions."""

    @field_validator("source", "images_dir", "cache_dir")
    @classmethod
    def _absolute(cls, path: str | None) -> str | None:
        """Saved as absolute paths, so that a run folder names its data wherever it is read
        (a fold job started in another folder, a moved run, `loes predict` run elsewhere)."""
        return None if path is None else str(Path(path).expanduser().absolute())

    @model_validator(mode="after")
    def _source_for_table_settings(self) -> DataConfig:
        """Table settings without the table are an error, never the synthetic cohort."""
        if problem := table_settings_without_source(self):
            raise PydanticCustomError("loes_setting", problem)
        return self


with warnings.catch_warnings():  # the preset's `register` shadows nothing pydantic needs
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

    class PreprocessingConfig(_Section):
        """The deterministic transforms (:func:`loes.transforms.preprocessing`), once per scan."""

        spatial_size: Annotated[tuple[PositiveInt, PositiveInt, PositiveInt], VOXELS] = _pre(
            "spatial_size"
        )
        """Network input size in voxels (x, y, z, RAS), after cropping to the head and padding;
        ``alexnet3d`` needs 69 or more along every axis (its strided convolution and three
        poolings)."""
        pixdim: Annotated[Spacing, MM] = _pre("pixdim")
        """Voxel size in mm the scans are resampled to."""
        orientation: str = _pre("orientation")
        """Axis codes the scans are reoriented to (MONAI ``Orientationd``)."""
        normalize: Literal["zscore", "percentile", "none"] = _pre("normalize")
        """Intensity normalisation: z-score over head voxels, percentiles to [0, 1], or none."""
        bias_correction: bool = _pre("bias_correction")
        """N4 bias-field correction (SimpleITK), about 0.5 s per scan."""
        register: bool = _pre("register")
        """Affine registration to the MNI ICBM152 2009 template (SimpleITK), about 4 s per scan."""
        percentiles: Annotated[tuple[float, float], unit("%")] = _pre("percentiles")
        """Lower and upper percentile mapped to 0 and 1 by ``normalize: percentile``, in %."""
        crop_margin: Annotated[int, Field(ge=0), VOXELS] = _pre("crop_margin")
        """Voxels kept around the head when cropping."""
        foreground_fraction: Annotated[float, Field(ge=0, lt=1)] = _pre("foreground_fraction")
        """Native scans: the crop keeps voxels above this fraction of the way from the background
        to the 99th intensity percentile; skull-stripped scans keep every voxel that differs
        from their constant background (:class:`loes.transforms.BrainForeground`)."""
        skull_strip: Literal[False, True, "auto"] = _pre("skull_strip")
        """Brain extraction (deepbet, :class:`loes.transforms.SkullStrip`) before resampling:
        ``false``, ``true`` (every scan) or ``auto`` (only scans that are not skull-stripped
        already, decided per scan by :func:`loes.transforms.is_skull_stripped`); 3-12 s per
        scan on a 2-core CPU. Saved with the models, so predict, explain and bundles strip as
        the run did."""
        cache: Literal["memory", "disk", "gpu"] = "memory"
        """Where preprocessed scans are kept: RAM, files under ``data.cache_dir``, or the GPU;
        ``disk`` also keeps the paired change model's registered pairs, so that later runs and
        one-fold jobs read them instead of registering again."""

        def preset_kwargs(self) -> dict[str, Any]:
            """The arguments of :func:`loes.transforms.preprocessing`: every field but ``cache``."""
            return self.model_dump(mode="json", exclude={"cache"})


class AugmentationConfig(_Section):
    """The random transforms (:func:`loes.transforms.augmentation`), fresh every epoch."""

    enabled: bool = True
    """Augment the training scans (never the validation or test scans)."""
    affine_prob: Probability = _aug("affine_prob")
    """Probability of a random rotation, scaling and translation."""
    rotate_degrees: Annotated[float, Field(ge=0, le=180), unit("degrees")] = _aug("rotate_degrees")
    """Largest rotation about each axis, in degrees."""
    scale: Annotated[float, Field(ge=0, lt=1)] = _aug("scale")
    """Largest relative scaling per axis: a factor in 1 ± scale."""
    translate_mm: Annotated[NonNegative, MM] = _aug("translate_mm")
    """Largest translation per axis, in mm."""
    flip_prob: Probability = _aug("flip_prob")
    """Probability of a left-right flip (the Loes total is symmetric)."""
    bias_prob: Probability = _aug("bias_prob")
    """Probability of a random polynomial bias field."""
    bias_coeff: NonNegative = _aug("bias_coeff")
    """Largest coefficient of the bias field."""
    noise_prob: Probability = _aug("noise_prob")
    """Probability of Gaussian noise."""
    noise_std: Annotated[NonNegative, ZSCORE] = _aug("noise_std")
    """Standard deviation of the noise, in z-score units."""
    contrast_prob: Probability = _aug("contrast_prob")
    """Probability of a random gamma contrast change."""
    gamma_range: tuple[Positive, Positive] = _aug("gamma_range")
    """Range the gamma of the contrast change is drawn from."""
    elastic: bool = _aug("elastic")
    """Add a 3D elastic deformation (slow on a CPU)."""
    elastic_prob: Probability = _aug("elastic_prob")
    """Probability of the elastic deformation when ``elastic`` is on."""
    where: Literal["auto", "loader", "batch"] = "auto"
    """Where the random transforms run: ``loader``, on each scan in the data loader (MONAI's
    transforms, on the CPU; in the workers of ``training.num_workers``); ``batch``, on each
    training batch once it is on the training device, in torch, batched
    (:class:`loes.transforms.RandBatchAugmentation`: the same transforms and ranges, no elastic
    deformation); ``auto``, the batch on CUDA (with the GPU cache the loader has no workers,
    and the per-scan transforms would run on the CPU while the GPU waits), the loader on a CPU
    (where training epochs were measured no faster on the batch) and whenever ``elastic`` is
    on. The two draw other random numbers, so the choice is part of a run's results."""

    @model_validator(mode="after")
    def _elastic_in_loader(self) -> AugmentationConfig:
        if self.enabled and self.elastic and self.where == "batch":
            raise PydanticCustomError(
                "loes_setting",
                "augmentation.where: batch has no elastic deformation; with "
                "augmentation.elastic: true set augmentation.where to loader (or auto, which "
                "then augments in the loader), or turn elastic off.",
            )
        return self

    def preset_kwargs(self) -> dict[str, Any]:
        """The arguments of :func:`loes.transforms.augmentation` (every field but ``enabled``
        and ``where``)."""
        return self.model_dump(mode="json", exclude={"enabled", "where"})


class ModelConfig(_Section):
    """The network, by its name in :mod:`loes.models`' registry."""

    name: str = "alexnet3d"
    """Registered network (``loes models`` lists them)."""
    dropout: Probability | None = None
    """Dropout probability of the network's head; null: the network's own default."""

    def network_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`loes.models.get_network` beyond the input size."""
        return {} if self.dropout is None else {"dropout": self.dropout}


class TrainingConfig(_Section):
    """Optimisation of one fold; early stopping and model selection use the inner validation
    subjects only."""

    epochs: Annotated[PositiveInt, EPOCHS] = 10
    """Passes over the training scans."""
    batch_size: Annotated[PositiveInt, SCANS] = 8
    """Scans per training step."""
    optimizer: Literal["adamw", "sgd"] = "adamw"
    """AdamW, or SGD with Nesterov momentum 0.9."""
    lr: Positive = 1e-3
    """Learning rate (the peak of the one-cycle schedule)."""
    weight_decay: NonNegative = 1e-4
    """Decoupled weight decay (AdamW) or L2 penalty (SGD)."""
    scheduler: Literal["cosine", "plateau", "onecycle", "none"] = "onecycle"
    """Learning-rate schedule: per step (cosine, one-cycle) or on the validation MAE (plateau)."""
    loss: Literal["mse", "l1", "huber"] = "huber"
    """Loss on standardised scores (Huber's delta is 1 SD of the training scores)."""
    reweight: Literal["none", "inverse", "lds"] = "none"
    """Up-weight rare scores: inverse frequency or label-distribution smoothing."""
    grad_clip: NonNegative = 5.0
    """Largest gradient norm; 0 turns clipping off."""
    patience: Annotated[PositiveInt, EPOCHS] = 10
    """Epochs without a better validation MAE before training stops."""
    amp: bool = True
    """Mixed precision on CUDA (bf16 where supported); never used on a CPU."""
    num_workers: Annotated[int, Field(ge=0), unit("processes")] = 0
    """Data-loader worker processes (augmentation runs in them with ``augmentation.where``
    ``loader``)."""
    batchnorm_scans: Annotated[int, Field(ge=0), SCANS] = 64
    """Training scans (un-augmented, drawn once per fold) on which the BatchNorm statistics are
    recomputed after every epoch; 0: keep BatchNorm's running averages."""
    memory_format: Literal["auto", "channels_last", "contiguous"] = "auto"
    """Memory layout of the network and its batches: channels_last (NDHWC), contiguous
    (NCDHW), or auto, the layout measured fastest on the device (channels_last on a CPU);
    results agree within float tolerance."""
    deterministic: bool = False
    """Identical reruns on CUDA: deterministic algorithms, no cuDNN autotuning, no TF32, no
    mixed precision (``amp`` is ignored) and no ``compile: auto``. Costs GPU speed (not
    measured yet): float32 instead of bf16, whose tensor-core rate is several times higher on
    the datasheets, and cuDNN's deterministic convolutions instead of the fastest. On a CPU the
    results are the same either way (measured: equal predictions); reruns repeat only on the
    same GPU model, software versions and number of threads or GPUs."""
    compile: Literal["auto", "on", "off"] = "auto"
    """Fuse the training step with ``torch.compile`` (inductor; needs a C/C++ compiler). auto:
    on CUDA (expected to win, not measured yet), unless ``deterministic``; off on a CPU,
    where the compiled step was measured no faster. Compiling takes about a minute per fold
    model and batch size on a 2-core CPU (65-75 s a fold on a tiny run, less once inductor's
    cache is warm); results agree with uncompiled ones within float tolerance."""

    @field_validator("compile", mode="before")
    @classmethod
    def _on_off(cls, value: Any) -> Any:
        """YAML reads a bare ``on``/``off`` as true/false."""
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _deterministic_not_compiled(self) -> TrainingConfig:
        """Inductor's generated kernels are not covered by deterministic mode."""
        if self.deterministic and self.compile == "on":
            raise PydanticCustomError(
                "loes_setting",
                "training.compile=on with training.deterministic=true: torch.compile's kernels "
                "are not covered by deterministic mode; set training.compile=off (or auto).",
            )
        return self

    @property
    def mixed_precision(self) -> bool:
        """Whether mixed precision may be used: ``amp`` and not ``deterministic`` (CUDA only:
        :func:`loes.pipeline.run.device.autocast`)."""
        return self.amp and not self.deterministic


class CrossValidationConfig(_Section):
    """The folds: subject-grouped, stratified by score, written once to ``splits.json``."""

    folds: Annotated[int, Field(ge=2)] = 5
    """Number of folds (ignored with ``by_site``: one fold per site)."""
    repeats: PositiveInt = 1
    """Repeated k-fold with independent seeds."""
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    """Share of the non-test scans (whole subjects) held out for early stopping and model
    selection."""
    by_site: bool = False
    """Leave one site out per fold."""
    splits_file: str | None = None
    """A ``splits.json`` to use instead of drawing folds."""
    tta: Literal["flip", "none"] = "flip"
    """Test-time augmentation of the test scans' predictions: ``flip``, the mean over the scan
    and its left-right mirror (the Loes total is symmetric; what ``loes predict`` does), or
    ``none``."""


class ChangeConfig(_Section):
    """How the change of the score between two sessions of a subject is predicted."""

    model: Literal["paired", "subtraction"] = "paired"
    """``paired``: each fold also trains a paired network on the registered subtraction of two
    sessions of a subject (later minus earlier, rigidly registered) and predicts the change
    from it; ``subtraction``: the difference of the network's two scores."""
    thick_slices: Probability = 0.5
    """Probability that a training pair of the paired network (``model: paired`` only) has one
    session re-read with thick slices (a Gaussian slice profile of 3 to 6 mm along a random
    axis, only what is coarser than ``preprocessing.pixdim``), so that it learns what thickness
    does to a subtraction image; 0: never, as in runs made before the setting existed."""


class ReportConfig(_Section):
    """How the report reads the results; never part of a run's identity, so ``loes report
    --threshold`` can re-read a finished run."""

    threshold: Annotated[float, Field(gt=0, le=34, multiple_of=0.5), unit("Loes points")] = 9.0
    """Transplant threshold in Loes points: a scan scoring this or more is positive (9: Peters
    et al. 2004, Blood 104:881; Miller et al. 2011 used 10)."""


class Config(_Section):
    """Everything one run decided; saved as ``config.yaml`` in the run folder.

    The defaults are the CPU main job (``configs/cpu.yaml``): AlexNet3D at 2 mm, 5 folds.
    """

    out: str | None = None
    """Run folder; null: ``runs/`` and the name of the source: ``runs/synthetic`` for the
    built-in cohort, ``runs/cohort`` for ``data/cohort.csv``, ``data/cohort/manifest.csv`` or
    a BIDS root ``data/cohort``."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to train: auto picks CUDA when PyTorch sees a GPU."""
    seed: int = 0
    """Seed of the folds, the weights, the batches and the augmentation."""
    data: DataConfig = Field(default_factory=DataConfig)
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    cv: CrossValidationConfig = Field(default_factory=CrossValidationConfig)
    change: ChangeConfig = Field(default_factory=ChangeConfig)
    """How the change between two sessions of a subject is predicted."""
    report: ReportConfig = Field(default_factory=ReportConfig)
    """How the report reads the results (not part of the run's identity)."""

    @model_validator(mode="after")
    def _name_run_folder(self) -> Config:
        if self.out is None:
            source = Path(self.data.source or "synthetic").absolute()
            name = source.parent.name if source.stem == "manifest" else source.stem
            self.out = str(Path("runs") / name)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), as saved in ``config.yaml``."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """The settings as YAML, in declaration order (what ``config.yaml`` holds)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def model_spec(self) -> dict[str, Any]:
        """The arguments of :class:`loes.models.LoesModel` that this configuration trains, but
        the score scaling: ``network``, ``spatial_size``, ``network_kwargs``, ``preprocessing``."""
        return {
            "network": self.model.name,
            "spatial_size": list(self.preprocessing.spatial_size),
            "network_kwargs": self.model.network_kwargs(),
            "preprocessing": self.preprocessing.preset_kwargs(),
        }

    def deciding_results(self) -> dict[str, Any]:
        """The settings that decide a run's results: all but :data:`NOT_DECIDING_RESULTS`."""
        settings = self.to_dict()
        for dotted in NOT_DECIDING_RESULTS:
            *parents, leaf = dotted.split(".")
            functools.reduce(dict.__getitem__, parents, settings).pop(leaf)
        if self.change.model == "subtraction":  # no paired network: no pairs to re-slice
            settings["change"].pop("thick_slices")
        return settings

    @classmethod
    def from_dict(cls, data: Any, where: str | None = None) -> Config:
        """Validate a nested dict of settings.

        Raises:
            LoesError: naming each bad key (``training.epochs``), what is allowed and, when
                ``where`` is given, the file it came from.
        """
        if not isinstance(data, dict):
            raise LoesError(f"{where or 'the configuration'} must hold a mapping of settings.")
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            problems = " ".join(validation_message(e, cls) for e in error.errors())
            raise LoesError((f"{where}: " if where else "") + problems) from None
