"""Heavy libraries imported without the optional extras they load and no stage uses.

Keras imports scikit-learn (its sklearn wrappers), matplotlib (image galleries), pandas
(DataFrame inputs) and requests (its RemoteMonitor callback; TensorFlow imports it for
itself, so on TensorFlow it loads) when they are installed;
seaborn imports SciPy (for KDE and clustering, with its own fallbacks); dvclive imports
pandas (DataFrame plots) and pynvml (GPU monitoring, which the train stage leaves off);
scikit-learn imports pandas (DataFrame inputs). Each does so in a try/except, as optional
extras. Hidden while the library loads, they cost nothing: `import keras` 6.5 s -> 4.3 s,
`import seaborn` 3.0 s -> 1.9 s on the 2-core test machine (2026-12-01, before requests
was added); pandas, pynvml and requests hidden take about 0.8 s more off the train stage
and 0.7 s off evaluate (benchmarks/RESULTS.md). Paid by every train, evaluate and plot run.
Code that imports them afterwards gets them as usual.
"""

from __future__ import annotations

import importlib
import importlib.abc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

OPTIONAL_EXTRAS = {
    "keras": ("sklearn", "matplotlib", "pandas", "requests"),
    "seaborn": ("scipy",),
    "dvclive": ("pandas", "pynvml"),
    "sklearn.metrics": ("pandas",),
}

# What a Keras backend imports for itself, so never hidden while Keras loads on it:
# TensorFlow's failure handling imports requests.
BACKEND_NEEDS = {"tensorflow": ("requests",)}


class _Hidden(importlib.abc.MetaPathFinder):
    """A finder that reports some top-level packages as not installed."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"{name} is hidden while another library loads", name=name)


@contextmanager
def hidden(names: tuple[str, ...]) -> Iterator[None]:
    """Within the block, importing these packages (if not imported yet) fails as if absent."""
    finder = _Hidden(names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def load(name: str) -> ModuleType:
    """`import <name>` (one of OPTIONAL_EXTRAS), the first time with its optional extras hidden."""
    if name in sys.modules:
        return sys.modules[name]
    extras = OPTIONAL_EXTRAS[name]
    if name == "keras":  # on the backend KERAS_BACKEND names (Keras' default: TensorFlow)
        needed = BACKEND_NEEDS.get(os.environ.get("KERAS_BACKEND", "tensorflow"), ())
        extras = tuple(extra for extra in extras if extra not in needed)
    with hidden(extras):
        return importlib.import_module(name)
