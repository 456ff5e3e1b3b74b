"""The study's storage: a journal file damaged by a crash is read up to its last whole record,
with one warning, and the study goes on; damage it cannot safely step over is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_classifier.errors import PipelineError
from mnist_classifier.tuning.study import open_storage


def study_with_trials(journal: Path, n: int):  # -> optuna.Study
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", storage=open_storage(str(journal)), load_if_exists=True)
    for _ in range(n):
        trial = study.ask()
        study.tell(trial, trial.number / 10)
    return study


@pytest.mark.parametrize(
    "damage",
    [b'{"op_code": 4, "worker_id": "a", "trial_id"', b"garbage\n", b"\x00\x00\x00"],
    ids=["cut short", "a garbage line", "zeros from a crash"],
)
def test_a_damaged_journal_tail_is_set_aside_and_the_study_goes_on(
    tmp_path: Path, damage: bytes, capsys: pytest.CaptureFixture
) -> None:
    journal = tmp_path / "journal.log"
    study_with_trials(journal, 2)
    whole = journal.read_bytes()
    journal.write_bytes(whole + damage)

    study = study_with_trials(journal, 1)  # opened again, then one more trial told
    assert [t.value for t in study.get_trials()] == [0.0, 0.1, 0.2]
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "no whole record" in warning[0] and "goes on from its" in warning[0]
    assert Path(f"{journal}.damaged").read_bytes() == damage
    assert journal.read_bytes().startswith(whole)
    assert len(study_with_trials(journal, 0).get_trials()) == 3  # and it reads back, with no warning
    assert capsys.readouterr().err == ""


def test_damage_followed_by_whole_records_is_one_line(tmp_path: Path) -> None:
    journal = tmp_path / "journal.log"
    study_with_trials(journal, 2)
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(lines[0] + b"garbage\n" + b"".join(lines[1:]))
    with pytest.raises(PipelineError, match=r"line 2 is damaged and whole records follow it \(line 3\)"):
        open_storage(str(journal))
