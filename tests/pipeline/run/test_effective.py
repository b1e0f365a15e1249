"""A run's ``config.yaml`` says what its settings were in effect (mixed precision off on a CPU,
the registered network's dropout for ``dropout: null``) as comments, and stays the settings
as given: it loads as the same configuration and a resumed run accepts it."""

import pytest
import torch
import yaml

from loes.errors import LoesError
from loes.pipeline import load_config
from loes.pipeline.run.effective import (
    annotated_yaml,
    effective_values,
    network_dropout,
    write_run_config,
)
from loes.pipeline.run.folder import check_run_folder, load_run_config, prepare_run_folder


def test_a_cpu_run_comments_amp_dropout_layout_and_device():
    config = load_config(overrides=["model.name=alexnet3d", "device=auto"])
    text = annotated_yaml(config, torch.device("cpu"))
    lines = {line.split("#")[0].strip(): line for line in text.splitlines() if "#" in line}
    assert lines == {
        "device: auto": "device: auto  # in effect: cpu (PyTorch saw no CUDA GPU)",
        "dropout: null": "  dropout: null  # in effect: 0.2 (the registered alexnet3d's own "
        "dropout)",
        "amp: true": "  amp: true  # in effect: false (mixed precision runs on CUDA only; this "
        "run trained on cpu)",
        "memory_format: auto": "  memory_format: auto  # in effect: channels_last (the layout "
        "measured fastest on cpu)",
        "compile: auto": "  compile: auto  # in effect: 'off' (measured no faster on cpu)",
        "where: auto": "  where: auto  # in effect: loader (measured no faster batched on cpu)",
    }
    assert yaml.safe_load(text) == config.to_dict()  # the same settings


def test_on_cuda_amp_is_in_effect_and_before_a_device_only_dropout_is_known():
    config = load_config(overrides=["model.name=sfcn"])
    on_gpu = effective_values(config, "cuda:0")
    assert "training.amp" not in on_gpu
    assert on_gpu["training.memory_format"]["effective"] == "contiguous"
    assert on_gpu["model.dropout"]["effective"] == 0.5
    assert on_gpu["augmentation.where"]["effective"] == "batch"
    elastic = load_config(overrides=["augmentation.elastic=true"])
    assert effective_values(elastic, "cuda")["augmentation.where"]["effective"] == "loader"
    # loes slurm on a login node: the jobs' device is not known yet
    assert set(effective_values(config, None)) == {"model.dropout"}
    assert annotated_yaml(config, None).count("# in effect") == 1
    # a value given is the value in effect: nothing to say
    given = load_config(overrides=["model.dropout=0.1", "training.amp=false", "device=cpu"])
    assert set(effective_values(given, "cpu")) == {
        "training.memory_format",
        "training.compile",
        "augmentation.where",
    }


def test_network_dropout_reads_the_built_network():
    assert network_dropout("alexnet3d", [72, 88, 72]) == 0.2
    assert network_dropout("alexnet3d", [72, 88, 72], dropout=0.4) == 0.4
    assert network_dropout("resnet18", [64, 64, 64]) == 0.0  # no dropout layer
    assert network_dropout("no-such-network", [64, 64, 64]) is None


def test_the_annotated_config_is_resumed_and_still_guards_the_run(tmp_path):
    config = load_config(overrides=[f"out={tmp_path / 'run'}", "device=cpu"])
    run_dir = prepare_run_folder(config)
    write_run_config(run_dir, config, torch.device("cpu"))
    assert "amp: true  # in effect: false" in (run_dir / "config.yaml").read_text()
    assert load_run_config(run_dir) == config
    assert check_run_folder(config) == run_dir  # resuming accepts its own folder
    changed = load_config(overrides=[f"out={run_dir}", "device=cpu", "training.amp=false"])
    with pytest.raises(LoesError, match=r"differs in training.amp: True there, False now"):
        check_run_folder(changed)


@pytest.mark.slow
def test_the_config_of_a_cpu_run_says_what_was_in_effect(tiny_run):
    text = (tiny_run / "config.yaml").read_text()
    assert "  amp: true  # in effect: false (mixed precision runs on CUDA only;" in text
    assert "  dropout: null  # in effect: 0.5 (the registered sfcn's own dropout)" in text
    assert load_run_config(tiny_run).training.amp is True  # the settings as given
    md = (tiny_run / "report.md").read_text()
    assert "- **Model**: sfcn (dropout 0.5, the network's own)" in md
    assert "- **Device**: cpu (mixed precision off: CUDA only)" in md
    html = (tiny_run / "report.html").read_text()
    assert "The settings as given; in effect: training.amp false (mixed precision runs" in html
