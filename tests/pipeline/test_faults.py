"""Faults under real `dvc repro`: kill -9 midway, Ctrl-C, outputs damaged in the workspace.

A stage that dies must leave nothing at its output path for DVC to cache, and the next
`dvc repro` must finish with the metrics of a run that was never interrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import yaml

from tests.support.commands import dvc, run, tool_env
from tests.support.data import add_to_catalogue, catalogue_entry, write_dataset
from tests.support.params import default_params, set_params
from tests.support.paths import METRICS, MODEL, OUTPUTS, PROCESSED, RAW, RAW_ROOT, ROOT
from tests.support.projects import copy_project
from tests.support.servers import http_mirror
from tests.support.stages import leftovers, stage_command

pytestmark = pytest.mark.slow  # real DVC runs and training subprocesses

# Big enough that preprocess spends ~0.2 s writing its outputs (a window to kill it in),
# small enough that an epoch of the tiny network takes a fraction of a second.
N_TRAIN, N_TEST = 20_000, 2_000
PARAMS = {
    "dataset": "tiny",
    "epochs": 8,
    "batch_size": 512,
    "mlp": {"hidden_units": [16]},
    "plot": {"samples": 4, "predictions": 4, "misclassified": 4},
}


def lock_outs(project: Path) -> dict[str, str]:
    """Output path -> md5 from dvc.lock: what DVC believes each stage produced."""
    lock = yaml.safe_load((project / "dvc.lock").read_text()) if (project / "dvc.lock").exists() else {}
    return {
        out["path"]: out["md5"]
        for stage in (lock or {}).get("stages", {}).values()
        for out in stage.get("outs", [])
    }


def temp_leftovers(project: Path) -> list[str]:
    """Temp siblings and partial downloads anywhere in the workspace (DVC's own dirs aside)."""
    return sorted(
        str(p.relative_to(project))
        for p in project.rglob(".*")
        if (".tmp" in p.name or p.name.endswith(".part"))
        and p.relative_to(project).parts[0] not in (".dvc", ".git")
    )


def make_project(dest: Path, shas: dict[str, str]) -> Path:
    copy_project(dest)
    add_to_catalogue(dest / "datasets.yaml", "tiny", catalogue_entry(shas))
    set_params(dest / "params.yaml", **PARAMS)
    return dest


@dataclass
class Kill:
    """What was on disk right after a stage was killed."""

    stage: str
    dvc_exit: int
    log: str
    midway: list[str]  # what showed the stage was at work when it was killed
    leftovers: dict[str, list[str]] = field(default_factory=dict)
    locked_stages: list[str] = field(default_factory=list)


def repro_and_kill(
    project: Path,
    env: dict[str, str],
    stage: str,
    ready: Callable[[], list[str]],
    whole_group: bool,
    log: Path,
    timeout: float = 180,
) -> Kill:
    """Start `dvc repro`; once `stage` runs and ready() finds it at work, SIGKILL it (or DVC
    and all). ready() looks only at what any implementation would show, not at temp names."""
    module = stage_command(stage)[2]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dvc", "repro"],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    try:
        child, midway = None, []
        while child is None or not (midway := ready()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dvc repro got past {stage} before the kill:\n{log.read_text()}")
            if child is None:
                child = _find_stage(proc.pid, module)
            time.sleep(0.001)
        if whole_group:  # as if the machine lost power: DVC gets no chance to tidy up
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # as the OOM killer would: only the stage's process dies
            child.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    lock = yaml.safe_load((project / "dvc.lock").read_text()) if (project / "dvc.lock").exists() else {}
    return Kill(
        stage=stage,
        dvc_exit=proc.returncode,
        log=log.read_text(),
        midway=midway,
        leftovers={str(o): leftovers(project, o) for o in OUTPUTS[stage]},
        locked_stages=sorted((lock or {}).get("stages", {})),
    )


def _find_stage(dvc_pid: int, module: str) -> psutil.Process | None:
    """The `python -m <module>` process that `dvc repro` (dvc_pid) started, once it exists."""
    for child in psutil.Process(dvc_pid).children(recursive=True):
        try:
            if module in child.cmdline()[1:3]:
                return child
        except psutil.Error:  # a short-lived helper process already gone
            pass
    return None


def written(folder: Path, suffix: str = "", skip: Path | None = None) -> list[str]:
    """Non-empty files under folder (ending in suffix, not under skip), as a stage writes them."""
    found = []
    for path in folder.rglob(f"*{suffix}") if folder.is_dir() else []:
        try:
            if path.is_file() and path.stat().st_size and not (skip and path.is_relative_to(skip)):
                found.append(str(path.relative_to(folder.parent)))
        except FileNotFoundError:  # renamed or removed while we looked
            pass
    return found


def logged(log: Path, text: str) -> list[str]:
    return [text] if text in log.read_text() else []


@dataclass
class Runs:
    reference: Path
    reference_metrics: dict
    reference_lock: dict[str, str]
    faulty: Path
    kills: dict[str, Kill]
    recovery: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """One uninterrupted `dvc repro` (the reference) and, beside it, one project whose
    fetch, preprocess and train are each killed midway by successive `dvc repro`s before
    a last `dvc repro` runs undisturbed."""
    base = tmp_path_factory.mktemp("faults")
    shas = write_dataset(base / "mirror" / "tiny", n_train=N_TRAIN, n_test=N_TEST)
    env = tool_env(DATA_MIRROR=str(base / "mirror"))
    reference = make_project(base / "reference", shas)
    faulty = make_project(base / "faulty", shas)
    with open(base / "reference.log", "w") as out:  # two cores: the reference runs meanwhile
        ref = subprocess.Popen(
            [sys.executable, "-m", "dvc", "repro"],
            cwd=reference,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        kills, data, logs = {}, faulty / RAW_ROOT.parent, {s: base / f"kill-{s}.log" for s in OUTPUTS}
        with http_mirror(base / "mirror", "slow") as slow:  # some bytes in, most still to come
            kills["fetch"] = repro_and_kill(
                faulty,
                tool_env(DATA_MIRROR=slow),
                "fetch",
                lambda: written(faulty / RAW_ROOT),
                whole_group=True,
                log=logs["fetch"],
            )
        kills["preprocess"] = repro_and_kill(  # an .npz being written
            faulty,
            env,
            "preprocess",
            lambda: written(data, ".npz", skip=faulty / RAW),
            whole_group=False,
            log=logs["preprocess"],
        )
        kills["train"] = repro_and_kill(  # the first epoch done, seven to go
            faulty,
            env,
            "train",
            lambda: logged(logs["train"], "Epoch 2/"),
            whole_group=False,
            log=logs["train"],
        )
        recovery = dvc(faulty, "repro", env=env, check=False)
    finally:
        ref.wait(timeout=600)
    assert ref.returncode == 0, (base / "reference.log").read_text()
    return Runs(
        reference,
        json.loads((reference / METRICS).read_text()),
        lock_outs(reference),
        faulty,
        kills,
        recovery,
    )


@pytest.mark.parametrize("stage", ["fetch", "preprocess", "train"])
def test_kill_9_midway_leaves_nothing_for_dvc_to_cache(runs: Runs, stage: str) -> None:
    kill = runs.kills[stage]
    assert kill.dvc_exit != 0, kill.log
    assert f"Running stage '{stage}'" in kill.log, kill.log
    for output, found in kill.leftovers.items():
        # the temp sibling may survive a SIGKILL; the output path itself must not exist
        assert str(output) not in found, f"{stage} left a partial {output}: {found}\n{kill.log}"
    assert stage not in kill.locked_stages, "dvc.lock records a stage that never finished"


def test_kill_9_really_hit_each_stage_midway(runs: Runs) -> None:
    """The kills landed inside the work, not before or after it."""
    fetch, preprocess, train = (runs.kills[s] for s in ("fetch", "preprocess", "train"))
    assert any(".part" in f for f in fetch.midway), fetch.midway  # a download under way
    assert "fetch: train-images" not in fetch.log  # ...that never completed
    assert preprocess.midway and "Updating lock file" not in preprocess.log.split("'preprocess'")[-1]
    assert "Epoch 2/" in train.log and f"Epoch {PARAMS['epochs']}/" not in train.log


def test_repro_after_the_kills_matches_an_uninterrupted_run(runs: Runs) -> None:
    assert runs.recovery.returncode == 0, runs.recovery.stdout + runs.recovery.stderr
    assert json.loads((runs.faulty / METRICS).read_text()) == runs.reference_metrics
    outs = lock_outs(runs.faulty)
    for data in (RAW, PROCESSED):  # bit-identical data; the model file embeds a save date
        assert outs[str(data)] == runs.reference_lock[str(data)]
    assert temp_leftovers(runs.faulty) == []
    assert "Data and pipelines are up to date" in dvc(runs.faulty, "status").stdout


@pytest.mark.parametrize("damaged", [PROCESSED / "train.npz", MODEL], ids=str)
def test_garbage_in_a_workspace_output_is_detected_and_repaired(runs: Runs, damaged: Path) -> None:
    project = runs.reference
    before = (project / damaged).read_bytes()
    (project / damaged).write_bytes(b"\x00garbage" * 100)
    status = dvc(project, "status").stdout
    assert "modified:" in status and str(damaged if damaged == MODEL else PROCESSED) in status, status
    dvc(project, "repro", env=tool_env(DATA_MIRROR=str(project.parent / "mirror")))
    assert (project / damaged).read_bytes() == before
    assert hashlib.md5(before).hexdigest() == locked_md5(project, damaged)
    assert "Data and pipelines are up to date" in dvc(project, "status").stdout


def locked_md5(project: Path, path: Path) -> str:
    """The md5 dvc.lock gives `path`, directly or through its tracked folder's .dir manifest."""
    outs = lock_outs(project)
    if str(path) in outs:
        return outs[str(path)]
    folder = outs[str(path.parent)]
    manifest = project / ".dvc" / "cache" / "files" / "md5" / folder[:2] / folder[2:]
    return next(e["md5"] for e in json.loads(manifest.read_text()) if e["relpath"] == path.name)


def test_ctrl_c_during_training_exits_130_with_no_model(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(default_params()))
    (tmp_path / "datasets.yaml").write_text((ROOT / "datasets.yaml").read_text())
    add_to_catalogue(
        tmp_path / "datasets.yaml",
        "tiny",
        catalogue_entry(write_dataset(tmp_path / RAW, n_train=600, n_test=100)),
    )
    set_params(
        tmp_path / "params.yaml", dataset="tiny", epochs=500, batch_size=64, mlp={"hidden_units": [16]}
    )
    env = tool_env(PYTHONPATH=str(ROOT))
    run(tmp_path, *stage_command("preprocess"), env=env)
    stdout = tmp_path / "stdout.log"
    with open(stdout, "w") as out_file:
        # Default SIGINT handling in the child even when this suite runs in the background,
        # where the shell has set SIGINT to "ignore" and the child would inherit that.
        proc = subprocess.Popen(
            stage_command("train"),
            cwd=tmp_path,
            env=env,
            text=True,
            stdout=out_file,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 120
        while not logged(stdout, "Epoch 2/"):  # one epoch done: well into training
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = stdout.read_text()
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1] == "train: interrupted; no output was written.", err
    assert "Epoch 500/" not in out
    for output in OUTPUTS["train"]:
        assert leftovers(tmp_path, output) == []


def test_a_ctrl_c_dropped_by_a_finaliser_still_stops_the_stage(tmp_path: Path) -> None:
    """Python prints and drops a KeyboardInterrupt raised inside `__del__`; the stage must
    still stop at its next check (train checks after every epoch) and exit 130."""
    code = (
        "import gc, signal\n"
        "from mnist_classifier.cli import run_command as run_stage\n"
        "from mnist_classifier.errors import raise_if_interrupted\n"
        "class Finalised:\n"
        "    def __del__(self):\n"
        "        signal.raise_signal(signal.SIGINT)\n"
        "def main():\n"
        "    Finalised()\n"
        "    gc.collect()\n"
        "    print('still running', flush=True)\n"
        "    raise_if_interrupted()\n"
        "    print('not stopped')\n"
        "run_stage('demo', main)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=tool_env(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout.splitlines() == ["still running"], proc.stdout + proc.stderr
    assert "Exception ignored" in proc.stderr  # the first KeyboardInterrupt really was dropped
    assert proc.returncode == 130
    assert proc.stderr.strip().splitlines()[-1] == "demo: interrupted; no output was written."
