from importlib import metadata

from loes.pipeline.cross_validation import cohort
from loes.pipeline.run.config import Config


def _config(cache_dir, **preprocessing):
    return Config(data={"cache_dir": str(cache_dir)}, preprocessing=preprocessing)


def test_the_disk_cache_folder_follows_the_preprocessing_not_where_it_is_kept(tmp_path):
    folder = cohort.disk_cache_folder(_config(tmp_path, cache="disk"))
    assert folder.parent == tmp_path / "persistent"
    assert cohort.disk_cache_folder(_config(tmp_path, cache="memory")) == folder
    assert cohort.disk_cache_folder(_config(tmp_path, pixdim=[1.5, 1.5, 1.5])) != folder


def test_an_upgraded_package_gets_a_fresh_disk_cache(tmp_path, monkeypatch):
    before = {p: cohort.disk_cache_folder(_config(tmp_path)) for p in cohort.CACHE_PACKAGES}
    real = metadata.version
    for package in cohort.CACHE_PACKAGES:
        with monkeypatch.context() as patch:
            patch.setattr(metadata, "version", lambda p, u=package: "99.0" if p == u else real(p))
            assert cohort.disk_cache_folder(_config(tmp_path)) != before[package], package
    assert cohort.disk_cache_folder(_config(tmp_path)) == before["loes"]
