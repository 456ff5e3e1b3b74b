"""The search's sampler: Optuna's TPE, each float it draws cut to 6 significant digits.

Why cut: a float such as 6.466422717414563e-05 does not survive DVC's YAML. `dvc exp run -S`
writes it to params.yaml, and DVC's round-trip YAML (ruamel) writes it back into dvc.lock as
6.466422717414561e-05: it truncates long mantissas in exponent form. The experiment then shows
`train: changed deps: params.yaml: modified: learning_rate` forever, and a clone that applies
it retrains instead of restoring it. 359 of 2,000 log-uniform draws between 1e-5 and 3e-4 did
so (2026-11-30, ruamel.yaml 0.19.1). A float of 6 significant digits comes back as it went,
and the study records the value that ran, not a neighbour of it. The cut is the one the stages
ask of a hand-typed `-S` float (mnist_classifier.config.short_float), which they refuse otherwise.

Imported by the search only: it imports Optuna.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution

from mnist_classifier.config import short_float


def bounded_short_float(value: float, low: float, high: float) -> float:
    """`value` cut as dvc.lock needs it, kept inside [low, high] (the bounds are as written)."""
    return min(max(short_float(value), low), high)


def _cut(value: Any, distribution: BaseDistribution) -> Any:
    """A float draw made short; any other draw as it is."""
    if isinstance(distribution, FloatDistribution):
        return bounded_short_float(value, distribution.low, distribution.high)
    return value


class ShortFloatTPE(optuna.samplers.TPESampler):
    """TPE whose float draws are short enough to pass through params.yaml and dvc.lock intact.

    Both of TPE's ways of drawing are cut: Optuna 5's TPE draws all params of a trial jointly
    (sample_relative) once its random start is over, one at a time (sample_independent) before.
    """

    def sample_relative(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        values = super().sample_relative(study, trial, search_space)
        return {name: _cut(value, search_space[name]) for name, value in values.items()}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        value = super().sample_independent(study, trial, param_name, param_distribution)
        return _cut(value, param_distribution)
