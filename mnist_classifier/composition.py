"""conf/ and params.yaml, on the tools' side: compose conf/ as `dvc exp run` does, and write
an experiment's params back into conf/ (`make keep`).

`conf/config.yaml` holds the params every model shares, `conf/model/<name>.yaml` each model's
own (its epochs, batch size, learning rate and network block). `dvc exp run` composes them
into params.yaml (DVC's Hydra support), so params.yaml holds only the chosen model's keys.
That composition starts from conf/ every time: an experiment's `-S` values that were applied
and committed but not written into conf/ are undone by the next `dvc exp run`, which is why
`make keep` writes them there (keep_in_conf) before it commits.

No stage imports this module (the stages read params.yaml through mnist_classifier.config),
so editing it reruns nothing.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from mnist_classifier.config import NETWORKS, PARAMS_FILE
from mnist_classifier.errors import PipelineError, first_line
from mnist_classifier.files import atomic_output

CONF_DIR = Path("conf")


def _composed(overrides: list[str] | tuple[str, ...], conf_dir: Path) -> Any:
    """Hydra's composition of conf/ with the overrides, as an OmegaConf object."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(str(Path(conf_dir).resolve()), version_base=None):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as exc:
        raise PipelineError(f"{conf_dir}/: {first_line(exc)}") from None
    return cfg


def compose(overrides: list[str] | tuple[str, ...] = (), conf_dir: Path = CONF_DIR) -> dict[str, Any]:
    """The params `dvc exp run -S ...` would write, composed from conf/ by Hydra as DVC does.

    `compose(["model=cnn", "epochs=40"])` is the CNN's block with 40 epochs. An override
    Hydra refuses (a key the chosen model lacks, an unknown model) is one clear line.
    """
    from omegaconf import OmegaConf

    return OmegaConf.to_container(_composed(overrides, conf_dir))


def params_text(overrides: list[str] | tuple[str, ...] = (), conf_dir: Path = CONF_DIR) -> str:
    """params.yaml's text as `dvc exp run` would write it (same composition, same YAML text)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(_composed(overrides, conf_dir))


def write_params(
    overrides: list[str] | tuple[str, ...] = (), conf_dir: Path = CONF_DIR, path: Path = PARAMS_FILE
) -> None:
    """Write params.yaml exactly as `dvc exp run` would, atomically, so a later `dvc exp run`
    leaves no stray diff."""
    text = params_text(overrides, conf_dir)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def with_values(tree: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of `tree` with dotted keys set (`{"mlp.dropout": 0.1}`), as `-S` sets them."""
    import copy

    out = copy.deepcopy(tree)
    for key, value in values.items():
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node[part]
        node[last] = value
    return out


def flat_params(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A params mapping flattened to dotted keys (`plot.samples`), as DVC names its columns."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            flat |= flat_params(value, f"{prefix}{key}.")
        else:
            flat[prefix + key] = value
    return flat


def flat_keys(raw: dict[str, Any]) -> list[str]:
    """The flattened keys of a params mapping, in order."""
    return list(flat_params(raw))


def all_param_names(conf_dir: Path = CONF_DIR) -> list[str]:
    """Every param any model can have, each model's keys in conf/ order (for comparisons)."""
    names: list[str] = []
    for model in NETWORKS:
        names += [n for n in flat_keys(compose([f"model={model}"], conf_dir)) if n not in names]
    return names


# --- writing params back into conf/ (`make keep`) ------------------------------------------


def _round_trip() -> Any:
    """ruamel's round-trip YAML, as DVC itself edits YAML: comments and key order survive."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.default_flow_style = False
    yaml.preserve_quotes = True
    return yaml


def _update(node: Any, values: dict[str, Any], where: str) -> None:
    """Set each of `values` in the ruamel mapping `node`, in place, so comments stay put."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(node.get(key), dict):
            _update(node[key], value, f"{where}{key}.")
        elif isinstance(value, list) and isinstance(node.get(key), list):
            del node[key][:]
            node[key].extend(value)
        else:
            node[key] = value


def _choose_model(config: Any, model: str, path: Path) -> None:
    """Point conf/config.yaml's `defaults` list at `model: <model>`."""
    for entry in config.get("defaults") or []:
        if isinstance(entry, dict) and "model" in entry:
            entry["model"] = model
            return
    raise PipelineError(f"{path} has no `- model: ...` line in its defaults list; add `- model: mlp`.")


def keep_in_conf(params: dict[str, Any], conf_dir: Path = CONF_DIR) -> list[Path]:
    """Write `params` (an experiment's params.yaml) into conf/, so that conf/'s composition
    is exactly `params` and every later `dvc exp run -S k=v` starts from them.

    Shared keys go to conf/config.yaml, the chosen model's to conf/model/<model>.yaml, and
    conf/config.yaml's defaults choose that model. Returns the files changed; nothing is
    written when the result would not compose back to `params`.
    """
    model = params.get("model")
    if model not in NETWORKS:
        raise PipelineError(f"the params name model {model!r}; it must be one of {', '.join(NETWORKS)}.")
    yaml = _round_trip()
    paths = {"shared": conf_dir / "config.yaml", "model": conf_dir / "model" / f"{model}.yaml"}
    docs = {name: yaml.load(path.read_text(encoding="utf-8")) for name, path in paths.items()}
    _choose_model(docs["shared"], model, paths["shared"])
    shared = {k: v for k, v in params.items() if k in docs["shared"] and k != "defaults"}
    own = {k: v for k, v in params.items() if k not in shared}
    unknown = [k for k in own if k not in docs["model"]]
    if unknown:
        raise PipelineError(
            f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} in no file of {conf_dir}/; "
            f"add the key to {paths['shared']} or {paths['model']} first."
        )
    _update(docs["shared"], shared, "")
    _update(docs["model"], own, "")
    texts = {}
    for name, doc in docs.items():
        out = io.StringIO()
        yaml.dump(doc, out)
        texts[name] = out.getvalue()
    originals = {n: paths[n].read_text(encoding="utf-8") for n in paths}
    changed = [paths[n] for n in paths if texts[n] != originals[n]]
    for name in paths:
        with atomic_output(paths[name]) as tmp:
            tmp.write_text(texts[name], encoding="utf-8")
    try:
        composed = compose(conf_dir=conf_dir)
    except PipelineError:
        composed = None
    if composed != params:
        for name in paths:  # put conf/ back as it was: nothing half-written
            with atomic_output(paths[name]) as tmp:
                tmp.write_text(originals[name], encoding="utf-8")
        raise PipelineError(
            f"writing these params into {conf_dir}/ would not compose back to them; "
            f"{conf_dir}/ is unchanged. Edit {conf_dir}/ by hand, then `make params`."
        )
    return changed


def main() -> None:
    """`python -m mnist_classifier.composition [OVERRIDE ...]` (`make params`): write
    params.yaml from conf/, as `dvc exp run` does, for a plain `dvc repro`."""
    import sys

    write_params(sys.argv[1:])
    print(f"params: wrote {PARAMS_FILE} from {CONF_DIR}/ ({' '.join(sys.argv[1:]) or 'defaults'})")


def cli() -> None:
    """The `mnist-params` console script."""
    from mnist_classifier.cli import run_program

    run_program("params", main)


if __name__ == "__main__":
    cli()
