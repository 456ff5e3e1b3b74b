"""Heavy libraries imported without the optional extras they load and no stage uses.

Each of these imports others in a try/except, as optional extras, when they are installed:
- Keras: scikit-learn (its sklearn wrappers), matplotlib (image galleries), pandas
  (DataFrame inputs), requests (its RemoteMonitor callback; TensorFlow imports it for itself,
  so on TensorFlow it loads); on TensorFlow, TensorFlow Lite imports JAX (a converter);
- seaborn: SciPy (for KDE and clustering, with its own fallbacks);
- dvclive: pandas (DataFrame plots) and pynvml (GPU monitoring, which train leaves off);
- scikit-learn: pandas (DataFrame inputs).
Hidden while the library loads, they cost nothing: `import keras` 6.5 s -> 4.3 s, `import
seaborn` 3.0 s -> 1.9 s on the 2-core test machine (2026-12-01); the later ones took about
0.6 s off the train stage, 0.5 s off evaluate and 0.9 s off a TensorFlow run (RESULTS.md).
Every train, evaluate and plot run pays what is left. Code that imports them afterwards gets
them as usual.
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

# What changes with the backend Keras loads on. What the backend imports for itself is
# never hidden (TensorFlow's failure handling imports requests); what it loads as an extra
# of its own is (TensorFlow Lite imports JAX for a converter: 0.9 s of every TensorFlow run).
BACKEND_NEEDS = {"tensorflow": ("requests",)}
BACKEND_EXTRAS = {"tensorflow": ("jax",)}


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
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        needed = BACKEND_NEEDS.get(backend, ())
        extras = tuple(e for e in extras if e not in needed) + BACKEND_EXTRAS.get(backend, ())
    with hidden(extras):
        return importlib.import_module(name)
