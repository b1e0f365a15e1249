import inspect
import re
from pathlib import Path

import pytest
import yaml

from loes.errors import LoesError
from loes.pipeline.run.config import AugmentationConfig, Config, PreprocessingConfig
from loes.pipeline.run.config_loading import load_config
from loes.transforms import augmentation, preprocessing


def test_defaults_then_file_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  epochs: 7\n  lr: 0.01\nmodel:\n  name: sfcn\n")
    config = load_config(path, ["training.epochs=3", "preprocessing.spatial_size=[64, 72, 64]"])
    assert config.training.epochs == 3  # the command line wins
    assert config.training.lr == 0.01  # the file wins over the default
    assert config.model.name == "sfcn"
    assert config.preprocessing.spatial_size == (64, 72, 64)
    assert config.training.batch_size == Config().training.batch_size


@pytest.mark.parametrize(
    ("source", "out"),
    [
        (None, "runs/synthetic"),
        ("data/cohort.csv", "runs/cohort"),
        ("data/cohort/manifest.csv", "runs/cohort"),
        ("data/cohort/", "runs/cohort"),
    ],
)
def test_the_default_run_folder_is_named_after_the_source(source, out):
    overrides = [f"data.source={source}"] if source else []
    assert load_config(overrides=overrides).out == out
    assert load_config(overrides=[*overrides, "out=mine"]).out == "mine"


def test_flag_values_are_taken_as_given_not_as_yaml():
    # `--out "run #1"` is not a YAML comment, `--out 007` not the number 7
    assert load_config(values={"out": "run #1"}).out == "run #1"
    assert load_config(values={"out": "007"}).out == "007"


def test_scientific_notation_without_a_dot_is_a_number():
    config = load_config(overrides=["training.lr=3e-4", "training.weight_decay=1E-5"])
    assert config.training.lr == pytest.approx(3e-4)
    assert config.training.weight_decay == pytest.approx(1e-5)


def test_round_trip_through_yaml(tmp_path):
    config = load_config(overrides=["cv.folds=3", "data.source=/data/manifest.csv"])
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.epochs=abc", "training.epochs must be a number"),
        ("training.epochs=2.5", "training.epochs must be a whole number"),
        ("training.epochs=0", "training.epochs must be positive"),
        ("training.foo=1", "unknown key training.foo; valid keys there: amp, batch_size"),
        ("foo=1", "unknown key 'foo'; valid top-level keys"),
        ("training.loss=l3", "training.loss must be one of 'mse', 'l1' or 'huber'"),
        ("preprocessing.pixdim=[2, 0, 2]", "preprocessing.pixdim[1] must be positive, got 0"),
        ("preprocessing=3", "preprocessing must be a section of key: value settings"),
        ("model.dropout=1.5", "model.dropout must be between 0 and 1"),
        ("training.lr=.inf", "training.lr"),
        ("preprocessing.pixdim=[.inf, 4, 4]", "preprocessing.pixdim[0]"),
        ("cv.folds=1", "cv.folds must be at least 2"),
        ("cv.val_fraction=0", "cv.val_fraction must be between 0 and 1 (exclusive)"),
        ("augmentation.flip_prob=2", "augmentation.flip_prob must be between 0 and 1"),
        ("preprocessing.spatial_size=[64, 64]", "preprocessing.spatial_size must be a list of 3"),
        ("training.amp=maybe", "training.amp must be true or false"),
        ("epochs", "must look like key=value"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(override, message):
    with pytest.raises(LoesError, match=re.escape(message)):
        load_config(overrides=[override])


def test_unreadable_or_invalid_files_are_clear(tmp_path):
    with pytest.raises(LoesError, match="cannot read configuration"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [unclosed\n")
    with pytest.raises(LoesError, match=r"bad\.yaml is not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(LoesError, match="must hold a mapping"):
        load_config(scalar)


def test_shipped_presets_load():
    from pathlib import Path

    configs = Path(__file__).resolve().parents[3] / "configs"
    cpu = load_config(configs / "cpu.yaml")
    gpu = load_config(configs / "gpu.yaml")
    assert cpu.model.name == gpu.model.name == "alexnet3d"
    # the defaults are the CPU main job, so `loes cv` and `make cv` train the same way
    assert cpu.model_copy(update={"out": Config().out}) == Config()
    assert cpu.preprocessing.pixdim == (2.0, 2.0, 2.0)
    assert gpu.preprocessing.cache == "gpu"
    # the raw job is the main job on whole heads, stripped: nothing else differs
    raw = load_config(configs / "raw.yaml")
    assert raw.data.synthetic_whole_head
    assert raw.preprocessing.skull_strip == "auto"
    same = {"out": cpu.out, "data": cpu.data, "preprocessing": cpu.preprocessing}
    assert raw.model_copy(update=same) == cpu


@pytest.mark.parametrize(
    ("section", "preset", "own"),
    [
        (PreprocessingConfig, preprocessing, {"cache"}),
        (AugmentationConfig, augmentation, {"enabled", "where"}),
    ],
)
def test_transform_sections_are_the_presets_arguments(section, preset, own):
    """One source of truth: a section's fields are its preset's arguments, with its defaults."""
    parameters = inspect.signature(preset).parameters
    for name, field in section.model_fields.items():
        if name in own:
            continue
        default = parameters[name].default
        assert field.default == (tuple(default) if isinstance(default, list) else default), name
    kwargs = section().preset_kwargs()
    assert set(kwargs) == set(section.model_fields) - own
    preset(**kwargs)  # the preset takes every field as it is


def test_every_setting_is_documented():
    sections = [
        Config,
        *(f.annotation for f in Config.model_fields.values() if f.description is None),
    ]
    for section in sections:
        for name, field in section.model_fields.items():
            if section is Config and name in {"data", "preprocessing", "augmentation", "model"}:
                continue
            if section is Config and name in {"training", "cv"}:
                continue
            assert field.description, f"{section.__name__}.{name}"


def test_only_settings_that_decide_results_identify_a_run():
    base = load_config()
    other_place = load_config(
        overrides=[
            "out=elsewhere",
            "device=cpu",
            "data.cache_dir=/scratch",
            "preprocessing.cache=disk",
        ]
    )
    assert other_place.deciding_results() == base.deciding_results()
    for override in ["seed=1", "preprocessing.pixdim=[1, 1, 1]", "augmentation.affine_prob=0"]:
        assert load_config(overrides=[override]).deciding_results() != base.deciding_results()


def test_an_older_config_file_takes_the_new_settings_defaults(tmp_path):
    """config.yaml of a run made before data.suffix and the preset fields existed."""
    saved = Config().to_dict()
    del saved["data"]["suffix"], saved["augmentation"]["noise_std"]
    del saved["preprocessing"]["crop_margin"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(saved))
    assert load_config(path) == Config()


def test_the_model_a_config_trains():
    config = load_config(overrides=["model.name=sfcn", "model.dropout=0.2"])
    spec = config.model_spec()
    assert spec["network"] == "sfcn"
    assert spec["spatial_size"] == [72, 88, 72]
    assert spec["network_kwargs"] == {"dropout": 0.2}
    assert spec["preprocessing"]["pixdim"] == [2.0, 2.0, 2.0]
    assert load_config().model_spec()["network_kwargs"] == {}


def test_a_flag_contradicting_a_setting_is_refused():
    message = "cv.folds is given twice, as 2 and by its flag as 3; keep one."
    with pytest.raises(LoesError, match=re.escape(message)):
        load_config(overrides=["cv.folds=2"], values={"cv.folds": 3})
    assert load_config(overrides=["cv.folds=3"], values={"cv.folds": 3}).cv.folds == 3
    assert load_config(overrides=["cv.folds=2", "cv.folds=4"]).cv.folds == 4  # layered


def test_data_paths_are_kept_absolute(tmp_path, monkeypatch):
    """A run's config.yaml names its data wherever it is read from (another folder, a job)."""
    monkeypatch.chdir(tmp_path)
    config = load_config(overrides=["data.source=data/cohort.csv", "data.images_dir=scans"])
    assert config.data.source == str(tmp_path / "data" / "cohort.csv")
    assert config.data.images_dir == str(tmp_path / "scans")
    assert load_config(overrides=["data.source=/abs/x.csv"]).data.source == "/abs/x.csv"
    assert load_config().data.source is None
    assert config.out == str(Path("runs") / "cohort")  # the run folder keeps its short name


def test_one_voxel_size_stands_for_all_three_axes():
    assert load_config(overrides=["preprocessing.pixdim=4"]).preprocessing.pixdim == (4, 4, 4)
    assert load_config(overrides=["preprocessing.pixdim=1.5"]).preprocessing.pixdim == (1.5,) * 3
    with pytest.raises(LoesError, match=r"preprocessing.pixdim\[0\] must be positive"):
        load_config(overrides=["preprocessing.pixdim=0"])


def test_skull_stripping_travels_with_the_models(tmp_path):
    """The run's skull_strip setting is in the description every fold model saves, so predict,
    explain and bundles (which build the preprocessing from it) strip as the run did."""
    from loes.models import LoesModel
    from loes.transforms import SkullStripd

    config = load_config(overrides=["preprocessing.skull_strip=auto", "model.name=sfcn"])
    spec = config.model_spec()
    assert spec["preprocessing"]["skull_strip"] == "auto"
    model = LoesModel(**spec, score_mean=3.0, score_std=4.0)
    model.save(tmp_path / "best.pt")
    loaded, _ = LoesModel.load(tmp_path / "best.pt")
    strips = [t for t in loaded.preprocessing().transforms if isinstance(t, SkullStripd)]
    assert len(strips) == 1
    assert strips[0].stripper.auto
    plain = load_config(overrides=["model.name=sfcn"]).model_spec()
    none = LoesModel(**plain, score_mean=3.0, score_std=4.0).preprocessing().transforms
    assert not [t for t in none if isinstance(t, SkullStripd)]


def test_an_override_with_a_hash_keeps_it_as_text():
    # YAML would read " #2" as a comment and name the run folder "runs/run"
    assert load_config(overrides=["out=runs/run #2"]).out == "runs/run #2"
    assert load_config(overrides=["training.epochs=3"]).training.epochs == 3
