"""Small file helpers shared by every stage: nothing is ever half-written."""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import math
import os
import re
import resource
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loes.errors import WriteError

__all__ = [
    "FORMULA_START",
    "atomic_path",
    "check_writable",
    "csv_text",
    "is_temporary",
    "json_text",
    "jsonable",
    "read_csv",
    "remove_temporaries",
    "write_error",
    "write_json",
    "write_new",
    "write_text",
]

#: the name :func:`atomic_path` gives its temporary file: ``.NAME.<8 hex digits><suffixes>``
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}(\.[^.]+)*")


#: what a torch writer says when its file cannot grow (it raises RuntimeError, not OSError)
_TORCH_WRITE_FAILED = re.compile(r"write|unexpected pos", re.IGNORECASE)
#: what to do, by the reason a write failed
_REMEDY = {
    errno.ENOSPC: "free some space, then run the same command again",
    errno.EDQUOT: "free some of your quota, then run the same command again",
    errno.EFBIG: "the file is larger than this process may write (ulimit -f): raise the limit",
    errno.EACCES: "the folder is not writable by you; choose another place",
    errno.EPERM: "the folder is not writable by you; choose another place",
    errno.EROFS: "the file system is read-only; choose another place",
}


def _short_write(path: Path, error: BaseException) -> tuple[str, str | None]:
    """Why a library's writer (torch's raises ``RuntimeError``) stopped short, told from the
    process's file-size limit and the free space, with the remedy."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        return f"File too large (at most {limit} bytes per file here)", _REMEDY[errno.EFBIG]
    with contextlib.suppress(OSError):
        space = os.statvfs(path.parent)
        if space.f_bavail * space.f_frsize < 1 << 20:
            return "No space left on device", _REMEDY[errno.ENOSPC]
    return f"the writer stopped short ({error})", None


def write_error(path: str | os.PathLike, error: BaseException) -> WriteError:
    """The :class:`~loes.errors.WriteError` that says ``path`` could not be written because of
    ``error`` (an ``OSError``, or a library writer's failure), and what to do."""
    if isinstance(error, OSError):
        reason, remedy = error.strerror or str(error), _REMEDY.get(error.errno)
    else:
        reason, remedy = _short_write(Path(path), error)
    return WriteError(f"cannot write {path}: {reason}" + (f"; {remedy}" if remedy else ""))


def _is_write_failure(error: BaseException) -> bool:
    return isinstance(error, OSError) or (
        isinstance(error, RuntimeError) and _TORCH_WRITE_FAILED.search(str(error)) is not None
    )


@contextlib.contextmanager
def _temporary_beside(path: Path) -> Iterator[Path]:
    """A new, empty temporary file beside ``path`` (same folder, so the same file system, where
    a rename is atomic), removed on the way out unless renamed. A failure to write (an
    ``OSError``, or a torch writer's ``RuntimeError``) becomes a :class:`WriteError` naming
    ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # keep the full suffix (".nii.gz") so libraries that pick a format by name still work;
        # created like any new file (0666 less the umask), not owner-only as mkstemp would
        while True:
            tmp_path = path.parent / f".{path.name}.{secrets.token_hex(4)}{''.join(path.suffixes)}"
            try:
                os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                break
            except FileExistsError:
                continue
    except OSError as error:
        raise write_error(path, error) from None
    try:
        yield tmp_path
    except WriteError:
        raise
    except BaseException as error:
        if _is_write_failure(error):
            raise write_error(path, error) from None
        raise
    finally:
        with contextlib.suppress(OSError):  # a vanished folder: nothing left to remove
            tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    Raises:
        WriteError: when the folder cannot be made, or the file cannot be written or renamed
            (no space, a file-size limit, no permission, a vanished folder), naming ``path``;
            nothing half-written is left behind.

    Examples::

        >>> with atomic_path("out/result.nii.gz") as tmp:  # doctest: +SKIP
        ...     nib.save(image, tmp)
    """
    path = Path(path)
    with _temporary_beside(path) as tmp_path:
        yield tmp_path
        os.replace(tmp_path, path)


def check_writable(folder: str | os.PathLike, remedy: str) -> None:
    """Make sure files can be written in ``folder`` before any work, creating nothing: a
    temporary file is made and removed in it, or, when it does not exist yet, in the nearest
    folder above it that does.

    Raises:
        WriteError: naming ``folder``, why, and ``remedy`` (e.g. "choose another place with
            --out").
    """
    folder = Path(folder).absolute()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "a file is in the way", str(existing))
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise WriteError(f"cannot write in {folder} ({reason}); {remedy}.") from None


def write_new(path: str | os.PathLike, text: str) -> bool:
    """Write ``text`` to ``path`` atomically unless ``path`` exists; return whether this call
    created it.

    When several processes (cluster jobs starting together) race to create the same file,
    exactly one wins and the others find its whole file: the file is written beside ``path``
    and hard-linked to its name, which fails when the name exists (POSIX ``link``; NFS and
    Lustre support it). On a file system without hard links it falls back to a rename when
    ``path`` is still absent, where two racing writers may both write (the last whole file
    stays).
    """
    path = Path(path)
    with _temporary_beside(path) as tmp:
        tmp.write_text(text)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links here (some FUSE and SMB mounts)
            if path.exists():
                return False
            os.replace(tmp, path)
        return True


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named like an :func:`atomic_path` temporary (``.NAME.<8 hex>...``)."""
    return _TEMPORARY.fullmatch(Path(path).name) is not None


def remove_temporaries(
    folder: str | os.PathLike, names: list[str] | None = None, older_than: float | None = None
) -> list[Path]:
    """Remove what :func:`atomic_path` left in ``folder`` when its process was killed mid-write
    (of ``names`` only, when given); returns the removed paths. Call it only on a folder that
    no other process is writing to, or with ``older_than`` (seconds since the temporary was
    last written), which spares what other processes are writing now."""
    removed = []
    now = time.time()
    for tmp in Path(folder).glob(".*"):
        match = _TEMPORARY.fullmatch(tmp.name)
        if match and tmp.is_file() and (names is None or match["name"] in names):
            try:  # another process may rename its temporary away meanwhile
                if older_than is not None and now - tmp.stat().st_mtime <= older_than:
                    continue
            except FileNotFoundError:
                continue
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def json_text(data: Any) -> str:
    """``data`` as indented, strict JSON (NaN as null), ending with a newline."""
    return json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented, strict JSON (NaN as null) to ``path`` atomically."""
    write_text(path, json_text(data))


def jsonable(value: Any) -> Any:
    """Plain JSON types: NaN and infinities become None, numpy scalars Python numbers.

    Examples::

        >>> jsonable({"r": float("nan"), "n": np.int64(3)})
        {'r': None, 'n': 3}
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


#: what a spreadsheet evaluates at the start of a text cell (OWASP, "CSV Injection")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [
        c for c in frame if frame[c].dtype == object or isinstance(frame[c].dtype, pd.StringDtype)
    ]


def _formula_like(value: object) -> bool:
    """Whether a cell is text that starts like a formula, after any quotes that escape one."""
    return isinstance(value, str) and value.lstrip("'").startswith(FORMULA_START)


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text (no index) that a spreadsheet opens without running anything: a
    text cell that starts like a formula (:data:`FORMULA_START`: ``=HYPERLINK(...)``,
    ``+1+1``, ``@SUM(1,1)``) gets a leading ``'``, as OWASP recommends ("CSV Injection"), and
    so does one that already starts with quotes before one, so that :func:`read_csv` reads
    every cell back unchanged; numbers stay numbers.

    Examples::

        >>> csv_text(pd.DataFrame({"subject": ["=1+1", "sub-01"], "score": [-1.5, 2.0]}))
        "subject,score\\n'=1+1,-1.5\\nsub-01,2.0\\n"
    """
    safe = frame.copy()
    safe.attrs = {}
    carriage_return = False
    for column in _text_columns(safe):
        safe[column] = safe[column].map(lambda v: f"'{v}" if _formula_like(v) else v)
        carriage_return |= safe[column].map(lambda v: isinstance(v, str) and "\r" in v).any()
    # Python's csv writer quotes a cell holding "\n" but not one holding "\r", which readers
    # take for a line break: quote every text cell then
    quoting = csv.QUOTE_NONNUMERIC if carriage_return else csv.QUOTE_MINIMAL
    return safe.to_csv(index=False, quoting=quoting)


def read_csv(path: str | os.PathLike, **options) -> pd.DataFrame:
    """A CSV that :func:`csv_text` wrote, every text cell as it was (the ``'`` that kept a
    formula from running removed); ``options`` go to :func:`pandas.read_csv`."""
    frame = pd.read_csv(path, **options)
    for column in _text_columns(frame):
        frame[column] = frame[column].map(
            lambda v: v[1:] if _formula_like(v) and v.startswith("'") else v
        )
    return frame
