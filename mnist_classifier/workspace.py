"""Three chores of the DVC loop that DVC alone gets wrong here: keep, dry, gc.

- `make keep NAME=<experiment>`: make an experiment the committed default. `dvc exp apply X
  && git commit` alone is undone by the next `dvc exp run`, which composes params.yaml from
  conf/ again (DVC's Hydra support) and brings back conf/'s params, from the run cache,
  without a word. keep applies X, writes its params into conf/ (comments kept), checks that
  conf/ composes back to them, and commits conf/, params.yaml, dvc.lock and the metrics.
- `make dry ARGS="epochs=30"`: which stages `dvc exp run -S epochs=30` would rerun, and
  without running anything. `dvc exp run --dry` fails here (it works in a temporary copy
  without the data), and `dvc repro --dry` names only the first stage and claims a run-cache
  hit for any changed params (DVC 3.67.1). This composes the params as `dvc exp run` would,
  asks `dvc status` with them in params.yaml, follows dvc.yaml's outputs to the stages
  downstream, and puts params.yaml back byte for byte.
- `make gc`: reclaim cache space, keeping what the workspace, every branch, every tag (each
  release is a tag) and every experiment use, so `dvc exp apply` of any of them still works.
  A plain `dvc gc -w` keeps the workspace only: every experiment's outputs go.

No stage imports this module.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from mnist_classifier.composition import CONF_DIR, compose, flat_params, keep_in_conf, params_text
from mnist_classifier.config import PARAMS_FILE, read_params
from mnist_classifier.errors import PipelineError
from mnist_classifier.files import atomic_output
from mnist_classifier.pipeline import pipeline_path
from mnist_classifier.processes import checked, run

# `dvc gc`'s scope for `make gc`: everything a person may still apply, pull or release.
GC_KEEP = ("--workspace", "--all-branches", "--all-tags", "--all-experiments")


def _changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """`key=value` for each flattened param whose value differs between two params mappings."""

    old, new = flat_params(before), flat_params(after)
    return [f"{k}={json.dumps(new[k])}" for k in new if old.get(k) != new[k]]


# --- keep ------------------------------------------------------------------------------------


def keep(name: str) -> str:
    """Apply experiment `name`, write its params into conf/, commit; return what to print."""
    # What the last `dvc exp run` leaves in the workspace is in its experiment already, and
    # `dvc exp apply` replaces it; any other change would be swept into the commit, or lost.
    results = {str(PARAMS_FILE), "dvc.lock", str(pipeline_path("metrics"))}
    status = checked(run("git", "status", "--porcelain", "--untracked-files=no"), "git status")
    dirty = [line[3:] for line in status.splitlines() if line[3:] not in results]
    if dirty:
        raise PipelineError(
            f"the workspace has uncommitted changes ({', '.join(dirty[:4])}); commit or stash "
            f"them first, so that keeping {name} commits nothing else."
        )
    before = compose()
    checked(run("dvc", "exp", "apply", name), f"`dvc exp apply {name}`")
    params = read_params()
    changed_files = keep_in_conf(params)
    text = params_text()  # the same values; Hydra's text, as the next `dvc exp run` writes it
    if PARAMS_FILE.read_text(encoding="utf-8") != text:
        with atomic_output(PARAMS_FILE) as tmp:
            tmp.write_text(text, encoding="utf-8")
    changes = _changed(before, params)
    checked(run("git", "add", "--", str(CONF_DIR), str(PARAMS_FILE)), "git add")
    checked(run("git", "add", "-u"), "git add")
    summary = " ".join(changes) or "the same params as before"
    checked(run("git", "commit", "-q", "-m", f"keep {name}: {summary}"), "git commit")
    sha = checked(run("git", "rev-parse", "--short", "HEAD"), "git rev-parse").strip()
    where = ", ".join(str(p) for p in changed_files) or f"{CONF_DIR}/ (already these params)"
    return (
        f"keep: {name} is the default now ({summary}), committed as {sha}: {where}, "
        f"{PARAMS_FILE}, dvc.lock and the metrics. Every `dvc exp run -S ...` starts from it; "
        "`dvc push` stores its outputs for others."
    )


# --- dry -------------------------------------------------------------------------------------


@contextmanager
def params_swapped(text: str) -> Iterator[None]:
    """params.yaml holds `text` inside the block and its own bytes again after, whatever happens."""
    original = PARAMS_FILE.read_bytes()
    try:
        with atomic_output(PARAMS_FILE) as tmp:
            tmp.write_text(text, encoding="utf-8")
        yield
    finally:
        with atomic_output(PARAMS_FILE) as tmp:
            tmp.write_bytes(original)


def _stage_graph(params: dict[str, Any]) -> dict[str, set[str]]:
    """Each stage of dvc.yaml (in its order) and the stages it reads outputs of."""
    spec = yaml.safe_load(Path("dvc.yaml").read_text(encoding="utf-8"))
    values = {k: v for entry in spec.get("vars", []) for k, v in entry.items()} | params

    def render(path: Any) -> str:
        text = next(iter(path)) if isinstance(path, dict) else str(path)
        return re.sub(r"\$\{([\w.]+)\}", lambda m: str(values.get(m[1], m[0])), text)

    outs = {
        name: [render(o) for kind in ("outs", "metrics", "plots") for o in stage.get(kind, [])]
        for name, stage in spec["stages"].items()
    }
    graph = {}
    for name, stage in spec["stages"].items():
        deps = [render(d) for d in stage.get("deps", [])]
        graph[name] = {
            other
            for other, paths in outs.items()
            if other != name and any(d == p or d.startswith(p + "/") for d in deps for p in paths)
        }
    return graph


def dry(overrides: list[str]) -> str:
    """What `dvc exp run -S <overrides>` would rerun, as text; runs no stage."""
    text = params_text(overrides)  # one composition: the text to try, and its values
    params = yaml.safe_load(text)
    with params_swapped(text):
        status = json.loads(checked(run("dvc", "status", "--json"), "`dvc status`") or "{}")
    graph = _stage_graph(params)
    rerun: list[str] = []
    for stage in graph:  # dvc.yaml's order is the pipeline's order
        if stage in status or graph[stage] & set(rerun):
            rerun.append(stage)
    changes = _changed(read_params(), params) if PARAMS_FILE.exists() else []
    head = f"dry: with {' '.join(overrides) or 'conf/ as it is'}"
    if changes:
        head += f" (params.yaml would change: {' '.join(changes)})"
    if not rerun:
        return head + ": nothing would rerun; every stage is up to date."
    lines = [head + ":"]
    for stage in rerun:
        if stage not in status:
            why = "after a stage above"
        elif "deleted" in json.dumps(status[stage]):
            why = "its outputs are missing here: `dvc pull` brings them"
        else:
            why = "its inputs changed"
        lines.append(f"  {stage}: would run ({why})")
    lines.append(
        "DVC restores a stage from its run cache instead of running it when these exact inputs "
        "ran before (`dvc exp run` says `is cached - skipping run`)."
    )
    return "\n".join(lines)


# --- gc --------------------------------------------------------------------------------------


def _cache_size() -> int:
    """Bytes in DVC's local cache."""
    cache = Path(".dvc/cache")
    return sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) if cache.exists() else 0


def gc() -> str:
    """`dvc gc` keeping the workspace, branches, tags and experiments; return what to print."""
    before = _cache_size()
    checked(run("dvc", "gc", *GC_KEEP, "--force"), "`dvc gc`")
    after = _cache_size()
    return (
        f"gc: DVC's cache {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB; kept what the workspace, "
        "every branch, every tag (releases) and every experiment use."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="mnist-workspace", description=__doc__.splitlines()[0] if __doc__ else None
    )
    sub = parser.add_subparsers(dest="command", required=True)
    keep_cmd = sub.add_parser("keep", help="make an experiment the committed default (conf/ included)")
    keep_cmd.add_argument("name", help="the experiment, as `dvc exp show` names it")
    dry_cmd = sub.add_parser("dry", help="which stages `dvc exp run -S ...` would rerun")
    dry_cmd.add_argument("overrides", nargs="*", help="as with -S: epochs=30 model=cnn")
    sub.add_parser("gc", help="reclaim cache space, keeping every experiment and release")
    args = parser.parse_args()
    if args.command == "keep":
        print(keep(args.name))
    elif args.command == "dry":
        print(dry([o.removeprefix("-S").strip() for o in args.overrides if o.strip() not in ("", "-S")]))
    else:
        print(gc())


def cli() -> None:
    """The `mnist-workspace` console script."""
    from mnist_classifier.cli import run_program

    run_program("workspace", main)


if __name__ == "__main__":
    cli()
