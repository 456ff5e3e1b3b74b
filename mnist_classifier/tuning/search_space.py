"""The search space of `make tune`: read from tune.yaml, checked, and drawn from by Optuna.

A user edits tune.yaml, not code. Each entry names a param as `-S` would (`learning_rate`,
`mlp.dropout`) and gives one of three forms:

    {low: 0.0003, high: 0.01, log: true}      a range (`step:` for a grid; ints stay ints)
    {choices: [adam, nadam, rmsprop]}          a choice
    {layers: {low: 1, high: 3}, units: {choices: [128, 256, 512]}}
                                               a list param (`mlp.hidden_units`, `cnn.filters`):
                                               how many entries, and one value for all of them

Everything is checked here, before a study is opened or anything trains: an unknown param,
an empty range, a value of the wrong type, and every bound and choice is also run through
the train stage's own checks (config.train_params), so a trial can never be refused later
for a value the space allowed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_classifier.composition import compose, flat_keys, with_values
from mnist_classifier.config import NETWORKS, BadParamError, lookup, train_params
from mnist_classifier.errors import PipelineError
from mnist_classifier.files import load_yaml

if TYPE_CHECKING:
    import optuna

TUNE_FILE = Path("tune.yaml")
# Params a search may not move: they change the data, the validation split or the figures,
# so trials would no longer be scored on the same validation set (or on anything at all).
FIXED = ("dataset", "seed", "val_fraction", "backend", "model")
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # becomes part of git ref names


@dataclass(frozen=True)
class Dimension:
    """One param's range or choices; `kind` is "int", "float" or "choice"."""

    name: str  # the study's name for it: the param's key, or `<key>.layers` / `<key>.units`
    kind: str
    low: float = 0
    high: float = 0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class Param:
    """A param of the pipeline and how the search draws it: one dimension, or two for a list."""

    key: str  # as `-S` names it
    value: Dimension | None = None  # a scalar param
    layers: Dimension | None = None  # a list param: its length ...
    units: Dimension | None = None  # ... and the one value of all its entries

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.value is not None:
            return self.value.suggest(trial)
        assert self.layers is not None and self.units is not None
        return [self.units.suggest(trial)] * self.layers.suggest(trial)

    def extremes(self) -> list[Any]:
        """Every value the bounds and choices allow at their edges, to check each once."""
        if self.value is not None:
            return _edges(self.value)
        assert self.layers is not None and self.units is not None
        return [[u] * n for n in _edges(self.layers) for u in _edges(self.units)]


@dataclass(frozen=True)
class Settings:
    """tune.yaml as a whole: which study, which model, and the model's space."""

    study: str
    model: str
    seed: int
    trials: int
    startup_trials: int
    pruning: bool
    params: tuple[Param, ...]


def _edges(dim: Dimension) -> list[Any]:
    if dim.kind == "choice":
        return list(dim.choices)
    cast = int if dim.kind == "int" else float
    return [cast(dim.low), cast(dim.high)]


def override(key: str, value: Any) -> str:
    """The `-S` override for a value: `mlp.hidden_units=[256,256]`, `optimizer=adam`."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list):
        text = "[" + ",".join(str(v) for v in value) + "]"
    else:
        text = repr(value) if isinstance(value, float) else str(value)
    return f"{key}={text}"


class _Where:
    """Names the place in tune.yaml an error is about."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, where: str, problem: str) -> PipelineError:
        return PipelineError(f"{self.path}: `{where}` {problem}. See docs/tuning.md for the forms.")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _dimension(name: str, spec: Any, default: Any, at: _Where, where: str) -> Dimension:
    """One range or choice, its type checked against the param's default value."""
    if not isinstance(spec, dict):
        raise at.error(
            where, f"is {spec!r}; it must be a mapping such as {{low: 1, high: 3}} or {{choices: [a, b]}}"
        )
    if "choices" in spec:
        if set(spec) != {"choices"}:
            raise at.error(where, "mixes `choices` with other keys; give either choices or low/high")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise at.error(f"{where}.choices", f"is {choices!r}; it must be a non-empty list")
        for choice in choices:
            if not _same_type(choice, default):
                raise at.error(
                    f"{where}.choices", f"holds {choice!r}; every choice must be {_type_name(default)}"
                )
        if len(set(map(repr, choices))) != len(choices):
            raise at.error(f"{where}.choices", f"repeats a value in {choices!r}")
        return Dimension(name, "choice", choices=tuple(choices))
    unknown = set(spec) - {"low", "high", "log", "step"}
    if unknown or not {"low", "high"} <= set(spec):
        raise at.error(
            where, f"has keys {sorted(spec)}; a range needs low and high (log and step are optional)"
        )
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    integral = isinstance(default, int) and not isinstance(default, bool)
    for key, value in (("low", low), ("high", high)) + ((("step", step),) if step is not None else ()):
        if not _number(value) or (integral and not isinstance(value, int)):
            raise at.error(
                f"{where}.{key}", f"is {value!r}; it must be {'an integer' if integral else 'a number'}"
            )
    if not (integral or isinstance(default, float)):
        raise at.error(where, f"is a range, but the param takes {_type_name(default)}; give choices")
    if not isinstance(log, bool):
        raise at.error(f"{where}.log", f"is {log!r}; it must be true or false")
    if low >= high:
        raise at.error(where, f"is an empty range: low {low!r} is not below high {high!r}")
    if log and (low <= 0 or step is not None):
        raise at.error(where, "is on a log scale, which needs low > 0 and no step")
    if step is not None and step <= 0:
        raise at.error(f"{where}.step", f"is {step!r}; it must be above 0")
    return Dimension(name, "int" if integral else "float", low=low, high=high, log=log, step=step)


def _same_type(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return _number(value)
    return isinstance(value, type(default))


def _type_name(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    return {int: "an integer", float: "a number", str: "a word"}.get(type(default), type(default).__name__)


def _param(key: str, spec: Any, default: Any, at: _Where, where: str) -> Param:
    if isinstance(default, list):
        if not isinstance(spec, dict) or set(spec) != {"layers", "units"}:
            raise at.error(
                where, "is a list param; give {layers: {low: 1, high: 3}, units: {choices: [...]}}"
            )
        layers = _dimension(f"{key}.layers", spec["layers"], 1, at, f"{where}.layers")
        units = _dimension(f"{key}.units", spec["units"], default[0], at, f"{where}.units")
        if min(_edges(layers)) < 1:
            raise at.error(f"{where}.layers", "goes below 1; a list param needs at least one entry")
        return Param(key, layers=layers, units=units)
    return Param(key, value=_dimension(key, spec, default, at, where))


MAX_STUDY_SEED = 2**31 - 1  # trial N draws with seed + N, which NumPy's generators take below 2**32


def _integer(raw: dict[str, Any], key: str, at: _Where, minimum: int, maximum: int | None = None) -> int:
    value = raw.get(key)
    too_big = maximum is not None and isinstance(value, int) and value > maximum
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or too_big:
        expected = (
            f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"
        )
        raise at.error(key, f"is {value!r}; it must be {expected}")
    return value


def load_settings(path: Path = TUNE_FILE, conf_dir: Path = Path("conf")) -> Settings:
    """tune.yaml, checked against the model's composed params and the train stage's rules."""
    at = _Where(path)
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise PipelineError(
            f"{path} must be a mapping (study, model, seed, trials, space); see docs/tuning.md."
        )
    known = {"study", "model", "seed", "trials", "startup_trials", "pruning", "space"}
    if unknown := sorted(set(raw) - known):
        raise at.error(unknown[0], f"is not a setting; the settings are {', '.join(sorted(known))}")
    study = raw.get("study")
    if not isinstance(study, str) or not STUDY_NAME.fullmatch(study):
        raise at.error("study", f"is {study!r}; it must be a name of letters, digits, '.', '_' and '-'")
    model = raw.get("model")
    if model not in NETWORKS:
        raise at.error("model", f"is {model!r}; it must be one of {', '.join(NETWORKS)}")
    if not isinstance(raw.get("pruning", False), bool):
        raise at.error("pruning", f"is {raw['pruning']!r}; it must be true or false")
    space = raw.get("space")
    if not isinstance(space, dict) or not isinstance(space.get(model), dict) or not space[model]:
        raise at.error(f"space.{model}", "is missing or empty; list the params to search for this model")
    defaults = compose([f"model={model}"], conf_dir)
    tunable = [k for k in flat_keys(defaults) if k not in FIXED and not k.startswith("plot.")]
    params = []
    for key, spec in space[model].items():
        where = f"space.{model}.{key}"
        if key not in tunable:
            raise at.error(
                where, f"is not a param the search can set for `{model}`; those are: {', '.join(tunable)}"
            )
        params.append(_param(key, spec, lookup(defaults, key), at, where))
    settings = Settings(
        study=study,
        model=model,
        seed=_integer(raw, "seed", at, 0, MAX_STUDY_SEED),
        trials=_integer(raw, "trials", at, 1),
        startup_trials=_integer({"startup_trials": raw.get("startup_trials", 8)}, "startup_trials", at, 0),
        pruning=raw.get("pruning", False),
        params=tuple(params),
    )
    _check_against_stage(settings, defaults, at)
    return settings


def _check_against_stage(settings: Settings, defaults: dict[str, Any], at: _Where) -> None:
    """Run every bound and choice through the train stage's own checks, one param at a time."""
    for param in settings.params:
        for value in param.extremes():
            try:
                train_params(with_values(defaults, {param.key: value}))
            except BadParamError as exc:
                reason = f"it must be {exc.expected}"
                raise at.error(
                    f"space.{settings.model}.{param.key}",
                    f"allows {value!r}, which the train stage refuses: {reason}",
                ) from None
