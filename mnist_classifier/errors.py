"""The one kind of error a user can fix, and Ctrl-C handling that survives finalisers."""

from __future__ import annotations


class PipelineError(Exception):
    """A problem the user can fix; its text is the whole message they see."""


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
