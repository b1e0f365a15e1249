from loes.pipeline import load_config
from loes.pipeline.report.run_info import SMOKE_EPOCHS, SMOKE_SCANS, describe_run
from loes.pipeline.report.summary import summarize
from loes.pipeline.report.tables import what_was_run

ENVIRONMENT = {"device": "cuda:0", "gpu": "NVIDIA H200", "packages": {"loes": "0.0.9"}}


def test_what_was_run_comes_from_the_saved_settings(synthetic_predictions, make_history):
    config = load_config(
        overrides=["model.name=sfcn", "cv.folds=3", "cv.repeats=2", "training.epochs=12"]
    ).to_dict()
    summary = summarize(synthetic_predictions(repeats=2), n_resamples=0)
    histories = {(0, 0): make_history(0, epochs=7), (1, 2): make_history(1, epochs=12)}
    run = describe_run(summary, config, ENVIRONMENT, histories)
    assert run["model"] == "sfcn"
    assert run["data_source"] == "built-in synthetic cohort (66 subjects, seed 0)"
    assert (run["n_scans"], run["n_subjects"], run["n_folds"], run["n_repeats"]) == (24, 12, 3, 2)
    assert (run["epochs"], run["epochs_run"]) == (12, [7, 12])
    assert run["pixdim"] == config["preprocessing"]["pixdim"]
    assert run["spatial_size"] == config["preprocessing"]["spatial_size"]
    assert run["device"] == "cuda:0 (NVIDIA H200)"
    assert run["loes_version"] == "0.0.9"
    lines = dict(what_was_run({**summary, "run": run, "loes_version": "0.1.0"}))
    assert lines["Model"] == "sfcn (dropout 0.5, the network's own)"  # model.dropout: null
    assert lines["Device"] == "cuda:0 (NVIDIA H200)"  # mixed precision on, as set
    assert lines["Folds"] == "3 folds × 2 repeats, grouped by subject"
    assert lines["Training"].startswith("at most 12 epochs")
    assert lines["Training"].endswith("folds trained 7-12 epochs")
    assert lines["loes"] == "trained with 0.0.9, report by 0.1.0"
    pixdim = " × ".join(f"{v:g}" for v in config["preprocessing"]["pixdim"])
    assert lines["Resolution"].startswith(f"{pixdim} mm voxels, input ")


def test_few_epochs_or_few_scans_make_a_smoke_run(synthetic_predictions):
    summary = summarize(synthetic_predictions(repeats=1), n_resamples=0)  # 24 scans
    assert summary["n_scans"] < SMOKE_SCANS
    short = load_config(overrides=[f"training.epochs={SMOKE_EPOCHS - 1}"]).to_dict()
    run = describe_run(summary, short)
    assert run["smoke"]
    assert run["smoke_text"].startswith(
        f"Smoke run: {SMOKE_EPOCHS - 1} training epochs (under {SMOKE_EPOCHS}) and 24 scans"
    )
    big = {**summary, "n_scans": SMOKE_SCANS}
    enough = load_config(overrides=[f"training.epochs={SMOKE_EPOCHS}"]).to_dict()
    assert describe_run(big, enough)["smoke"] is False
    assert describe_run(big, enough)["smoke_text"] == ""
    assert "training epochs" in describe_run(big, short)["smoke_text"]
    assert "scans" in describe_run(summary, enough)["smoke_text"]


def test_without_settings_what_was_run_says_unknown(synthetic_predictions):
    summary = summarize(synthetic_predictions(repeats=1), n_resamples=0)
    run = describe_run(summary)
    assert run["model"] is None
    assert run["device"] is None
    lines = dict(what_was_run({**summary, "run": run, "loes_version": "0.1.0"}))
    assert lines["Model"] == "unknown (no config.yaml)"
    assert lines["Folds"] == "3 folds × 1 repeat, grouped by subject"


def test_a_cpu_run_says_which_values_were_in_effect(synthetic_predictions):
    """config.yaml's ``amp: true`` and ``dropout: null`` of a CPU run are mixed precision off
    and the registered AlexNet3D's 0.2, and every page says so."""
    config = load_config(overrides=["model.name=alexnet3d"]).to_dict()
    assert (config["training"]["amp"], config["model"]["dropout"]) == (True, None)
    summary = summarize(synthetic_predictions(repeats=1), n_resamples=0)
    run = describe_run(summary, config, {"device": "cpu", "packages": {}})
    effective = run["effective"]
    assert effective["training.amp"]["effective"] is False
    assert effective["model.dropout"]["effective"] == 0.2
    assert effective["training.memory_format"]["effective"] == "channels_last"
    assert effective["device"]["effective"] == "cpu"
    lines = dict(what_was_run({**summary, "run": run, "loes_version": "0.1.0"}))
    assert lines["Model"] == "alexnet3d (dropout 0.2, the network's own)"
    assert lines["Device"] == "cpu (mixed precision off: CUDA only)"
    # a dropout given is the one in effect: nothing to add
    given = load_config(overrides=["model.dropout=0.3"]).to_dict()
    assert "model.dropout" not in describe_run(summary, given)["effective"]
