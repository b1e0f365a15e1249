"""Why a file named in a table cannot be opened: the actual cause, and what to do about it.

``os.path.exists`` only says "no", and "not found; fix the path" misleads when the path is
right: the file may be a symbolic link whose content was never fetched (a DataLad or git-annex
dataset before ``datalad get``: ``ls`` shows the file, opening it fails), a folder on the way
may be a file or closed to the user, or the file may be a small pointer standing in for content
stored elsewhere (git-annex, Git LFS). Each is named here, with its fix.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
from pathlib import Path

__all__ = [
    "DOES_NOT_EXIST",
    "exception_text",
    "likely_cause",
    "os_error_text",
    "placeholder_text",
    "unreachable_text",
]

#: what ``unreachable_text`` says of a path that simply does not exist (the path is wrong)
DOES_NOT_EXIST = "does not exist"
_ANNEX_POINTER = b"/annex/objects/"
_LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def unreachable_text(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be reached, as text to follow its name; ``None`` when it exists.

    ``DOES_NOT_EXIST`` when nothing is there: the path is wrong. Otherwise the actual cause
    and its fix: a broken symbolic link (with its target, and how to fetch a DataLad/git-annex
    file's content), a file where a folder should be, a folder the user may not enter, a link
    loop.

    Examples::

        >>> unreachable_text("/no/such/scan.nii.gz")
        'does not exist'
    """
    try:
        os.stat(path)
    except OSError as error:
        return os_error_text(path, error)
    return None


def os_error_text(path: str | os.PathLike, error: OSError) -> str:
    """The cause of ``error`` (raised opening or stat-ing ``path``) and its fix, as text to
    follow the file's name, e.g. ``"cannot be read (Permission denied); check its
    permissions (ls -l ...)."``."""
    path = Path(path)
    code = error.errno
    if code == errno.ENOENT:
        link = _first_broken_link(path)
        if link is None:
            return DOES_NOT_EXIST
        return _broken_link_text(path, link)
    if code == errno.ENOTDIR:
        blocker = next((p for p in _ancestors(path) if p.exists() and not p.is_dir()), None)
        where = f"{blocker} is a file, not a folder" if blocker else "a folder on it is a file"
        return f"cannot exist: {where}; fix the path."
    if code == errno.ELOOP:
        return "is a symbolic link that leads back to itself (a loop); fix or replace the link."
    if code == errno.EISDIR:
        return "is a folder, not a file; point to the file inside."
    if code in (errno.EACCES, errno.EPERM):
        if os.path.lexists(path) and os.access(path.parent, os.X_OK):
            return (
                f"cannot be read ({error.strerror or 'permission denied'}); check its "
                f"permissions (ls -l {path}) or ask its owner for read access."
            )
        closed = next((p for p in _ancestors(path) if not os.access(p, os.X_OK)), path.parent)
        return (
            f"cannot be reached: permission denied on the folder {closed}; ask its owner for "
            "access (chmod +rx), or copy the data somewhere you can read."
        )
    return f"cannot be read ({error.strerror or error}); check the path and the disk."


def placeholder_text(path: str | os.PathLike, head: bytes) -> str | None:
    """When ``head`` (the file's first bytes) shows a git-annex or Git LFS pointer, a file
    standing in for content never fetched: what it is and how to fetch the content; else
    ``None``."""
    if head.startswith(_ANNEX_POINTER):
        return (
            "is a git-annex pointer file, not the image: its content has not been fetched; run "
            f"`datalad get {path}` (or `git annex get {path}`) in the dataset."
        )
    if head.startswith(_LFS_POINTER):
        return (
            "is a Git LFS pointer file, not the image: its content has not been fetched; run "
            "`git lfs pull` in the repository."
        )
    return None


def exception_text(error: BaseException) -> str:
    """A library's exception as a message quotes it: its type and the first line of its text
    (``"ImageFileError: Cannot work out file type of ..."``)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _first_broken_link(path: Path) -> Path | None:
    """The symbolic link on ``path`` (the file, or a folder on the way) whose target is
    missing; ``None`` when what is missing is a plain name."""
    for part in [*_ancestors(path), Path(os.path.abspath(path))]:
        if not part.exists():
            return part if part.is_symlink() else None
    return None


def _broken_link_text(path: Path, link: Path) -> str:
    target = os.readlink(link)
    own = link == Path(os.path.abspath(path))
    subject = "is a symbolic link" if own else f"lies under {link}, a symbolic link"
    if "annex/objects" in target.replace(os.sep, "/"):
        return (
            f"{subject} to {target}, which is missing: the content has not been fetched (a "
            f"DataLad or git-annex dataset); run `datalad get {path}` (or `git annex get "
            f"{path}`) in the dataset."
        )
    return (
        f"{subject} to {target}, which is missing; fix the link or put the file in its place "
        f"(in a DataLad or git-annex dataset, fetch the content with `datalad get {path}`)."
    )


def _ancestors(path: Path) -> list[Path]:
    """The folders above ``path``, from the root down (absolute, so that none is left out)."""
    return list(reversed(Path(os.path.abspath(path)).parents))


_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]|\\")


def likely_cause(path: str | os.PathLike) -> str | None:
    """What a path that does not exist most likely is, from what does exist around it: a
    Windows path, a folder missing on this machine (a drive not mounted, a path from another
    computer), the same scan under another extension or case, or a typo of a file beside it
    (the closest name, :func:`difflib.get_close_matches`). None when nothing near explains it.

    Examples::

        >>> likely_cause(r"C:\\\\scans\\\\004.nii.gz")
        'a Windows path: give the path of the file on this machine, with / between folders'
    """
    text = str(path)
    if _WINDOWS_PATH.search(text):
        return "a Windows path: give the path of the file on this machine, with / between folders"
    path = Path(text)
    folder = path.parent
    if not folder.is_dir():
        existing = next((p for p in folder.parents if p.is_dir()), None)
        missing = folder if existing is None else existing / folder.relative_to(existing).parts[0]
        return (
            f"a folder missing on this machine: {missing} does not exist (a drive not mounted, "
            "or a path from another computer)"
        )
    try:
        names = sorted(p.name for p in folder.iterdir() if p.is_file())
    except OSError:
        return None
    stem = path.name.split(".")[0]
    other_suffix = [n for n in names if n.split(".")[0] == stem and n != path.name]
    if other_suffix:
        return f"the same scan with another extension: {folder / other_suffix[0]} exists"
    same_case = [n for n in names if n.lower() == path.name.lower()]
    if same_case:
        return f"the same name in other letter case: {folder / same_case[0]} exists"
    # a typo in the letters of a long enough name; names that differ in digits alone are
    # other subjects or sessions, not typos
    letters = re.sub(r"\d", "", path.name)
    close = [
        n
        for n in difflib.get_close_matches(path.name, names, n=3, cutoff=0.9)
        if re.sub(r"\d", "", n) != letters and len(stem) >= 8
    ]
    if close:
        return f"a typo: the closest file there is {folder / close[0]}"
    return None
