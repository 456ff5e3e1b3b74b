"""The study: Optuna's storage (a journal file, or a database many machines share) and the
study in it that this search joins or creates.

Nothing trains before these succeed: an unreachable server, a missing directory or a study
of another model is one line here.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_classifier.errors import PipelineError, first_line
from mnist_classifier.tuning.experiments import git
from mnist_classifier.tuning.search_space import Settings

if TYPE_CHECKING:
    import optuna

STATE_DIR = Path(".tune")  # gitignored: the default journal, each trial's log and epoch curve
JOURNAL = STATE_DIR / "journal.log"
HEARTBEAT_S = 20  # database storages: a trial whose machine is silent for GRACE_S is failed
GRACE_S = 120


def shown(url: str) -> str:
    """A storage URL as it may be printed: without its password."""
    if "://" not in url:
        return url
    from sqlalchemy.engine import make_url

    with contextlib.suppress(Exception):
        return make_url(url).render_as_string(hide_password=True)
    return url.split("://", 1)[0] + "://..."


def open_storage(url: str | None) -> optuna.storages.BaseStorage:
    """Optuna's storage for a URL (a database Optuna supports) or a path (a journal file)."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Optuna says so before each ask() on a database with heartbeats; the search beats them
    # itself (search.Search.heartbeat), as optimize() would.
    warnings.filterwarnings(
        "ignore", message="Heartbeat of storage is supposed to be used with Study.optimize"
    )
    if url is None:
        STATE_DIR.mkdir(exist_ok=True)
        url = str(JOURNAL)
    if "://" not in url:
        path = Path(url)
        if path.is_dir():
            raise PipelineError(
                f"--storage {url} is a directory; name a file in it, e.g. {path / 'journal.log'}."
            )
        if not path.parent.is_dir():
            raise PipelineError(
                f"the study's journal {url}: its directory does not exist; create it or fix --storage."
            )
        if note := settle_journal(path):
            print(f"tune: warning: {note}", file=sys.stderr, flush=True)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    engine: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        engine["connect_args"] = {"connect_timeout": 10}
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    try:
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
                )
            except (IntegrityError, ProgrammingError):
                # Two machines creating Optuna's tables at once in a new database: one of them
                # loses the race (a duplicate type or table); the tables exist on the next try.
                if attempt == 4:
                    raise
                time.sleep(1 + attempt)
    except ImportError:
        raise PipelineError(
            f"no database driver for {shown(url)}; this project ships psycopg for postgresql:// URLs."
        ) from None
    except Exception as exc:  # SQLAlchemy's errors: a wrong URL, a server down, a refused login
        raise PipelineError(
            f"cannot open the study's storage {shown(url)}: {first_line(exc)}. Check --storage / STORAGE=."
        ) from None


def settle_journal(path: Path) -> str | None:
    """A journal whose last records were cut short (a machine or a search killed mid-write) or
    are garbage: Optuna reads up to them but appends after them, and then can read nothing
    past them. Those bytes are moved to `<journal>.damaged` and the study goes on from its
    whole records; a note says so. Damage followed by whole records is refused in one line.
    Done under Optuna's own lock of the file, so no other machine is mid-write meanwhile."""
    if not path.is_file():
        return None
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        data = path.read_bytes()
        records = data.splitlines(keepends=True)
        whole, end = 0, 0
        for record in records:
            if not (record.endswith(b"\n") and _is_json(record)):
                break
            whole, end = whole + 1, end + len(record)
        if end == len(data):
            return None
        later = [n for n, record in enumerate(records[whole + 1 :], whole + 2) if _is_json(record)]
        if later:
            raise PipelineError(
                f"the study's journal {path}: line {whole + 1} is damaged and whole records follow it "
                f"(line {later[0]}); Optuna cannot read past it. Remove that line, or start a new study."
            )
        aside = path.with_name(path.name + ".damaged")
        with aside.open("ab") as out:
            out.write(data[end:])
        os.truncate(path, end)
        return (
            f"the study's journal {path} ended in {len(data) - end} bytes that are no whole record "
            f"(a search killed mid-write?); they are in {aside}, and the study goes on from its "
            f"{whole} whole records."
        )
    finally:
        lock.release()


def _is_json(record: bytes) -> bool:
    try:
        json.loads(record)
    except ValueError:
        return False
    return True


def open_study(settings: Settings, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """The study named in tune.yaml: created, or joined where it exists (a resume, or another machine)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=3)
        if settings.pruning
        else optuna.pruners.NopPruner()
    )
    try:
        study = optuna.create_study(
            study_name=settings.study,
            storage=storage,
            direction="maximize",
            load_if_exists=True,
            pruner=pruner,
        )
    except Exception as exc:
        raise PipelineError(f"cannot open study {settings.study!r}: {first_line(exc)}") from None
    model = study.user_attrs.get("model")
    if model is None:
        study.set_user_attr("model", settings.model)
    elif model != settings.model:
        raise PipelineError(
            f"study {settings.study!r} searches the {model} model, not {settings.model}; "
            "give this search its own name (tune.yaml `study:`, or --study)."
        )
    return study


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count towards `--trials`: complete or pruned (a failed one is retried)."""
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study.get_trials(deepcopy=False, states=done)


def check_names(settings: Settings, study: optuna.Study, baseline: str) -> None:
    """A new study must not reuse the experiment names of an old one (DVC would refuse them)."""
    if study.get_trials(deepcopy=False):
        return
    old = git("for-each-ref", "--format=%(refname)", f"refs/exps/{baseline[:2]}/{baseline[2:]}/")
    names = (ref.rsplit("/", 1)[1] for ref in old.splitlines())
    clash = sorted(name for name in names if name.startswith(f"{settings.study}-"))
    if clash:
        raise PipelineError(
            f"experiments named {settings.study}-N exist already ({', '.join(clash[:3])}...), "
            "from an earlier study of that name; give this one a new name (tune.yaml `study:`, or --study) "
            f"or remove them: dvc exp remove {' '.join(clash)}"
        )
