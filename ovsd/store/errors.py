"""The store's own errors: callers above ``ovsd/store/`` never see a Redis library's exception types."""

from __future__ import annotations


class StoreError(Exception):
    """Something went wrong talking to the store."""


class StoreUnavailable(StoreError):
    """The store cannot be reached, or the connection a command was on was dropped before its reply.

    A command failed this way may or may not have run on the server (its reply was lost with the connection);
    every multi-key change is one atomic script, so it ran whole or not at all.
    """


class StoreReplyError(StoreError):
    """The server refused one command (an error reply such as ``WRONGTYPE``, ``NOSCRIPT`` or a script's error).

    Only that command failed; the connection and every other command on it are fine.
    """


class StoreCommandError(StoreError, ValueError):
    """A command that cannot be sent (an argument that is not text, bytes or a number, or text that is not
    valid Unicode, such as a lone surrogate). Nothing was sent; the connection is untouched."""


class StoreProtocolError(StoreError):
    """The byte stream from the server cannot be matched to our commands; the connection is dropped."""
