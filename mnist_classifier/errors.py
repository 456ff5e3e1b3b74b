"""The one kind of error a user can fix, and Ctrl-C handling that survives finalisers."""

from __future__ import annotations


class PipelineError(Exception):
    """A problem the user can fix; its text is the whole message they see."""


def first_line(exc: BaseException | str) -> str:
    """An exception's message (or any text) as its first non-empty line; a message-less
    exception as its type's name. Libraries' messages run to many lines of detail."""
    text = str(exc)
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line or (type(exc).__name__ if isinstance(exc, BaseException) else "")


_interrupted = False


def on_sigint(signum: int, frame: object) -> None:
    """SIGINT handler: remember the Ctrl-C, then raise it as usual."""
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt again if Ctrl-C came earlier.

    A KeyboardInterrupt that lands inside a finaliser (`__del__`, of which TensorFlow and
    DVC's git library have many) is printed and dropped by Python; long loops call this so
    that such a Ctrl-C still stops the stage.
    """
    if _interrupted:
        raise KeyboardInterrupt
