"""Errors that reach the user as one clear message, never as a traceback."""

__all__ = ["LoesError", "WriteError"]


class LoesError(Exception):
    """A problem with the user's input or configuration; the message says what to change."""


class WriteError(LoesError, OSError):
    """A file could not be written (no space left, a file-size limit, no permission, a folder
    that vanished): the message names the file and why. Also an ``OSError``, so that code that
    tolerates a write failing (a cache, a read-only run folder) still does."""
