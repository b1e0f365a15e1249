"""Why a file cannot be opened: each cause named, with its fix."""

from __future__ import annotations

import errno
import os

import pytest

from loes.data.readers.files import (
    DOES_NOT_EXIST,
    os_error_text,
    placeholder_text,
    unreachable_text,
)


def test_a_file_or_folder_that_exists_is_reachable(tmp_path):
    (tmp_path / "a.nii.gz").write_bytes(b"x")
    assert unreachable_text(tmp_path / "a.nii.gz") is None
    assert unreachable_text(tmp_path) is None


def test_a_wrong_path_simply_does_not_exist(tmp_path):
    assert unreachable_text(tmp_path / "a.nii.gz") == DOES_NOT_EXIST
    assert unreachable_text(tmp_path / "no" / "folder" / "a.nii.gz") == DOES_NOT_EXIST


def test_a_folder_on_the_way_that_is_a_broken_link(tmp_path):
    (tmp_path / "anat").symlink_to(".git/annex/objects/anat")
    path = tmp_path / "anat" / "a.nii.gz"
    assert unreachable_text(path) == (
        f"lies under {tmp_path / 'anat'}, a symbolic link to .git/annex/objects/anat, which is "
        "missing: the content has not been fetched (a DataLad or git-annex dataset); run "
        f"`datalad get {path}` (or `git annex get {path}`) in the dataset."
    )


def test_a_relative_broken_link_is_named_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.symlink("missing.nii.gz", "a.nii.gz")
    assert unreachable_text("a.nii.gz").startswith("is a symbolic link to missing.nii.gz, which")


def test_os_errors_name_their_cause(tmp_path):
    folder = tmp_path / "a.nii.gz"
    folder.mkdir()
    assert os_error_text(folder, IsADirectoryError(errno.EISDIR, "Is a directory")) == (
        "is a folder, not a file; point to the file inside."
    )
    (tmp_path / "b").write_text("")
    denied = PermissionError(errno.EACCES, "Permission denied")
    assert os_error_text(tmp_path / "b", denied) == (
        f"cannot be read (Permission denied); check its permissions (ls -l {tmp_path / 'b'}) or "
        "ask its owner for read access."
    )
    assert os_error_text(tmp_path / "b", OSError(errno.EIO, "Input/output error")) == (
        "cannot be read (Input/output error); check the path and the disk."
    )


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root enters any folder")
def test_a_folder_closed_to_the_user(tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir()
    (closed / "a.nii.gz").write_text("")
    closed.chmod(0o600)
    try:
        assert unreachable_text(closed / "a.nii.gz") == (
            f"cannot be reached: permission denied on the folder {closed}; ask its owner for "
            "access (chmod +rx), or copy the data somewhere you can read."
        )
    finally:
        closed.chmod(0o755)


@pytest.mark.parametrize(
    ("head", "start"),
    [
        (b"/annex/objects/MD5E-s9--0a.nii.gz\n", "is a git-annex pointer file, not the image"),
        (b"../../.git/annex/objects/Xy/Zw/MD5E-s9", None),  # a link's target, not a pointer
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:", "is a Git LFS pointer file"),
        (b"\x1f\x8b\x08\x00", None),
    ],
)
def test_pointer_files_standing_in_for_content_not_fetched(head, start):
    text = placeholder_text("a.nii.gz", head)
    assert text is None if start is None else text.startswith(start)
