"""Small file helpers shared by every stage: nothing is ever half-written."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "atomic_path",
    "is_temporary",
    "json_text",
    "jsonable",
    "remove_temporaries",
    "write_json",
    "write_new",
    "write_text",
]

#: the name :func:`atomic_path` gives its temporary file: ``.NAME.<8 hex digits><suffixes>``
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}(\.[^.]+)*")


@contextlib.contextmanager
def _temporary_beside(path: Path) -> Iterator[Path]:
    """A new, empty temporary file beside ``path`` (same folder, so the same file system, where
    a rename is atomic), removed on the way out unless renamed."""
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
    try:
        yield tmp_path
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    Examples::

        >>> with atomic_path("out/result.nii.gz") as tmp:  # doctest: +SKIP
        ...     nib.save(image, tmp)
    """
    path = Path(path)
    with _temporary_beside(path) as tmp_path:
        yield tmp_path
        os.replace(tmp_path, path)


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


def remove_temporaries(folder: str | os.PathLike, names: list[str] | None = None) -> list[Path]:
    """Remove what :func:`atomic_path` left in ``folder`` when its process was killed mid-write
    (of ``names`` only, when given); returns the removed paths. Call it only on a folder that
    no other process is writing to."""
    removed = []
    for tmp in Path(folder).glob(".*"):
        match = _TEMPORARY.fullmatch(tmp.name)
        if match and tmp.is_file() and (names is None or match["name"] in names):
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
