"""The install everything runs through: the lock agrees with requirements.txt, and the
Makefile finds a supported Python or says in one line what to do."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.paths import ROOT

MAKE = shutil.which("make") or "make"


def _pins(lines: list[str]) -> dict[str, set[str]]:
    """name -> versions pinned with `==` (a universal lock may pin one per Python range)."""
    pins: dict[str, set[str]] = {}
    for line in lines:
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{line!r} is not pinned with =="
        pins.setdefault(canonicalize_name(req.name), set()).add(spec.version)
    return pins


def _requirements() -> dict[str, set[str]]:
    lines = [ln.split("#")[0].strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    return _pins([ln for ln in lines if ln])


def _lock_entries() -> list[str]:
    """Each requirement of the lock, with its `\\`-continued hash lines joined on."""
    text = (ROOT / "requirements.lock").read_text().replace("\\\n", " ")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_lock_pins_every_direct_requirement_at_the_same_version() -> None:
    locked = _pins([entry.split(" --hash")[0] for entry in _lock_entries()])
    direct = _requirements()
    assert direct, "requirements.txt lists nothing"
    for name, versions in direct.items():
        assert locked.get(name) == versions, f"{name}: requirements.txt {versions}, lock {locked.get(name)}"


def test_every_locked_package_carries_a_hash() -> None:
    entries = _lock_entries()
    assert len(entries) > 100  # the whole environment, not only the direct pins
    unhashed = [e.split()[0] for e in entries if not re.search(r"--hash=sha256:[0-9a-f]{64}", e)]
    assert unhashed == []


def test_dvc_reads_its_yaml_files_with_the_c_parser() -> None:
    """DVC parses dvc.yaml, dvc.lock and params files with ruamel.yaml's safe loader, whose C
    parser (ruamel.yaml.clib) is optional since ruamel.yaml 0.19: without it, pure Python
    parses them and every `dvc` command is about 0.2 s slower (benchmarks/RESULTS.md)."""
    from dvc.utils.serialize._yaml import parse_yaml
    from ruamel.yaml import YAML

    assert YAML(typ="safe").Parser.__name__ == "CParser"
    assert parse_yaml("a: [1, 2]\n", "x.yaml") == {"a": [1, 2]}  # DVC's reader, on that loader


def _make(tmp_path: Path, path: list[Path], *args: str) -> subprocess.CompletedProcess:
    """Run the project's Makefile in a copy, with PATH holding only the given folders."""
    for name in ("Makefile", "requirements.txt", "requirements.lock"):
        shutil.copy2(ROOT / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "INSTALLER", "MAKEFLAGS")}
    env["PATH"] = os.pathsep.join(str(p) for p in path)
    return subprocess.run([MAKE, *args], cwd=tmp_path, env=env, capture_output=True, text=True)


def _fake_bin(folder: Path, **programs: str) -> Path:
    """Executables named after the keys: `real` runs this interpreter, `broken` exits 1
    (as a pyenv shim of a version that is not selected does)."""
    folder.mkdir(exist_ok=True)
    for name, kind in programs.items():
        body = f'exec "{sys.executable}" "$@"' if kind == "real" else "exit 1"
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    return folder


def test_without_a_supported_python_make_stops_with_one_line(tmp_path: Path) -> None:
    fake = _fake_bin(tmp_path / "bin", **{"python3.12": "broken", "python3.10": "real"})
    proc = _make(tmp_path, [fake], "venv")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # exactly one line
    assert "no supported Python found" in proc.stderr
    assert "3.11, 3.12 or 3.13" in proc.stderr and "PYTHON=" in proc.stderr
    assert not (tmp_path / ".venv").exists()


def test_make_picks_the_newest_python_that_runs(tmp_path: Path) -> None:
    fake = _fake_bin(tmp_path / "bin", **{"python3.11": "real", "python3.13": "broken"})
    dry = _make(tmp_path, [fake], "-n", "venv", "INSTALLER=pip")
    assert "python3.11 -m venv .venv" in dry.stdout
    _fake_bin(fake, **{"python3.12": "real"})
    dry = _make(tmp_path, [fake], "-n", "venv", "INSTALLER=pip")
    assert "python3.12 -m venv .venv" in dry.stdout
    assert "--require-hashes" in dry.stdout and "requirements.lock" in dry.stdout


PROBE = (
    "import sys; linked = not any('libpython' in m for m in open('/proc/self/maps'));"
    "print(f'{sys.version_info[0]}.{sys.version_info[1]}', linked, sys.executable)"
)


def _builds_of_one_version() -> tuple[str, Path, Path]:
    """A real interpreter with libpython linked in (a distribution's) and one that loads it
    from libpython3.X.so (pyenv's), of one supported version: this machine's, wherever they are."""
    places = [Path(d) / f"python3.{v}" for d in os.environ["PATH"].split(os.pathsep) for v in (11, 12, 13)]
    places += sorted(Path.home().glob(".pyenv/versions/3.1[123]*/bin/python3.1[123]"))
    builds: dict[tuple[str, bool], Path] = {}
    for place in places:
        try:
            out = subprocess.run([place, "-c", PROBE], capture_output=True, text=True, timeout=60)
        except OSError:
            continue
        if out.returncode == 0:
            version, linked, executable = out.stdout.split()
            builds.setdefault((version, linked == "True"), Path(executable))
    for (version, linked), path in builds.items():
        if linked and (version, False) in builds:
            return f"python{version}", path, builds[(version, False)]
    raise AssertionError(
        f"this test needs two builds of one Python 3.11-3.13, one with libpython linked in (e.g. "
        f"Debian's /usr/bin/python3.11) and one shared (e.g. pyenv's); found {sorted(builds)}"
    )


def test_make_takes_the_build_with_libpython_linked_in_wherever_it_is_on_the_path(tmp_path: Path) -> None:
    """Both builds run the suite; the linked-in one (PGO and LTO at Debian) in less time
    (benchmarks/RESULTS.md), so it is chosen whatever the PATH order."""
    name, linked, shared = _builds_of_one_version()
    folders = {}
    for kind, target in (("linked", linked), ("shared", shared)):
        folders[kind] = tmp_path / kind
        folders[kind].mkdir()
        (folders[kind] / name).symlink_to(target)
    work = tmp_path / "work"
    work.mkdir()
    for order in (["shared", "linked"], ["linked", "shared"]):
        dry = _make(work, [folders[k] for k in order], "-n", "venv", "INSTALLER=pip")
        assert f"{folders['linked'] / name} -m venv .venv" in dry.stdout, (order, dry.stdout + dry.stderr)
    dry = _make(work, [folders["shared"]], "-n", "venv", "INSTALLER=pip")
    assert f"{folders['shared'] / name} -m venv .venv" in dry.stdout, dry.stdout + dry.stderr


def test_a_python_override_that_does_not_work_is_refused(tmp_path: Path) -> None:
    proc = _make(tmp_path, [Path("/usr/bin"), Path("/bin")], "venv", "PYTHON=/bin/false")
    assert proc.returncode != 0
    assert "PYTHON=/bin/false is not a working Python 3.11, 3.12 or 3.13" in proc.stderr


# Each Makefile variable a person sets, with a shell command hidden in it: the command must reach
# Python as one piece of data and never run (issue 27: `VERSION='1.2.3; touch X'` used to touch X).
INJECTIONS = {
    "release": (
        ["VERSION=1.2.3; touch INJECTED", "STAGE=prod"],
        ["1.2.3; touch INJECTED", "--stage", "prod"],
    ),
    "release-option": (["VERSION=1.0.0 --no-push"], ["1.0.0 --no-push"]),
    "keep": (["NAME=e1; touch INJECTED"], ["keep", "e1; touch INJECTED"]),
    "predict": (["IMAGES=a.png; touch INJECTED b.png"], ["a.png;", "touch", "INJECTED", "b.png"]),
    "tune": (
        ["STUDY=s; touch INJECTED", "STORAGE=postgresql://u:pw@h/db'; touch INJECTED; '", "TRIALS=2"],
        ["--trials", "2", "--storage", "postgresql://u:pw@h/db'; touch INJECTED; '"]
        + ["--study", "s; touch INJECTED"],
    ),
    "serve": (["ARGS=--port 1; touch INJECTED"], ["--port", "1;", "touch", "INJECTED"]),
    "demo-digits": (["ARGS=--out x; touch INJECTED"], ["--out", "x;", "touch", "INJECTED"]),
    "dry": (["ARGS=epochs=3 `touch INJECTED`"], ["dry", "epochs=3", "`touch", "INJECTED`"]),
    "params": (["ARGS=epochs=3 && touch INJECTED"], ["epochs=3", "&&", "touch", "INJECTED"]),
}


@pytest.mark.parametrize("case", INJECTIONS)
def test_makefile_variables_reach_the_command_as_data_never_as_shell(tmp_path: Path, case: str) -> None:
    target = case.removesuffix("-option")
    variables, expected = INJECTIONS[case]
    argv_log = tmp_path / "argv"
    fake = _fake_bin(tmp_path / "bin")
    (fake / "python").write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "{argv_log}"\n')
    (fake / "python").chmod(0o755)
    # -o: take the venv as built (the fake python stands in for it).
    path = [fake, Path("/usr/bin"), Path("/bin")]
    proc = _make(tmp_path, path, "-o", ".venv/.installed", target, *variables)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp_path / "INJECTED").exists(), proc.stdout
    assert "pw@" not in proc.stdout + proc.stderr  # make echoes its recipe: no password in it
    argv = argv_log.read_text().splitlines()
    assert argv[:1] == ["-m"] and argv[2:] == expected, argv
