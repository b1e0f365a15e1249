"""Errors that reach the user as one clear message, never as a traceback."""

__all__ = ["LoesError"]


class LoesError(Exception):
    """A problem with the user's input or configuration; the message says what to change."""
