"""Fetch over real HTTP from servers on 127.0.0.1: good, 404 and corrupt mirrors."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnist_classifier import catalogue, download
from mnist_classifier.errors import PipelineError
from tests.support.data import FILE_NAMES, catalogue_entry, write_dataset
from tests.support.paths import ROOT
from tests.support.servers import http_mirror


@pytest.fixture()
def source(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A directory holding a tiny dataset, and its checksums."""
    shas = write_dataset(tmp_path / "files", n_train=50, n_test=20)
    return tmp_path / "files", shas


def _dataset(tmp_path: Path, shas: dict[str, str], mirrors: list[str]) -> catalogue.Dataset:
    path = tmp_path / "datasets.yaml"
    path.write_text(yaml.safe_dump({"tiny": catalogue_entry(shas, mirrors)}))
    return catalogue.load_dataset(path, "tiny")


def _assert_verified(out: Path, shas: dict[str, str]) -> None:
    assert sorted(p.name for p in out.iterdir()) == sorted(FILE_NAMES.values())
    for role, name in FILE_NAMES.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == shas[role]


def test_good_mirror(tmp_path: Path, source: tuple[Path, dict[str, str]]) -> None:
    files, shas = source
    with http_mirror(files) as url:
        download.fetch(_dataset(tmp_path, shas, [url]), tmp_path / "raw", None, timeout=5)
    _assert_verified(tmp_path / "raw", shas)


@pytest.mark.parametrize("mode", ["404", "corrupt"])
def test_bad_mirror_is_skipped_for_the_next(
    tmp_path: Path, source: tuple[Path, dict[str, str]], mode: str, capsys: pytest.CaptureFixture
) -> None:
    files, shas = source
    with http_mirror(files, mode) as bad, http_mirror(files) as good:
        download.fetch(_dataset(tmp_path, shas, [bad, good]), tmp_path / "raw", None, timeout=5)
    _assert_verified(tmp_path / "raw", shas)
    assert f"{bad}/{FILE_NAMES['train_images']}" in capsys.readouterr().err


def test_nothing_lands_when_every_mirror_is_bad(tmp_path: Path, source: tuple[Path, dict[str, str]]) -> None:
    files, shas = source
    with (
        http_mirror(files, "404") as missing,
        http_mirror(files, "corrupt") as corrupt,
        pytest.raises(PipelineError) as err,
    ):
        download.fetch(_dataset(tmp_path, shas, [missing, corrupt]), tmp_path / "raw", None, timeout=5)
    assert "HTTP 404" in str(err.value) and "SHA-256" in str(err.value) and "DATA_MIRROR" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["datasets.yaml", "files"]


def test_data_mirror_directory_comes_first(tmp_path: Path, source: tuple[Path, dict[str, str]]) -> None:
    files, shas = source
    (tmp_path / "mirror").mkdir()
    files.rename(tmp_path / "mirror" / "tiny")
    dataset = _dataset(tmp_path, shas, ["http://127.0.0.1:9/never-used"])
    assert download.sources(dataset, str(tmp_path / "mirror"))[0] == f"{tmp_path / 'mirror'}/tiny"
    download.fetch(dataset, tmp_path / "raw", str(tmp_path / "mirror"), timeout=5)
    _assert_verified(tmp_path / "raw", shas)


def test_data_mirror_may_be_a_url(tmp_path: Path, source: tuple[Path, dict[str, str]]) -> None:
    files, shas = source
    (tmp_path / "served" / "tiny").parent.mkdir()
    files.rename(tmp_path / "served" / "tiny")
    with http_mirror(tmp_path / "served") as url:
        download.fetch(_dataset(tmp_path, shas, []), tmp_path / "raw", url + "/", timeout=5)
    _assert_verified(tmp_path / "raw", shas)


def test_light_stages_do_not_import_tensorflow_and_none_imports_seaborn_on_loading() -> None:
    """Heavy libraries load only inside the functions that use them: fetch, preprocess and
    plot never load TensorFlow, and no stage loads seaborn (with pandas) unless it draws."""
    code = (
        "import sys, stages.fetch, stages.preprocess, stages.plot, stages.train, stages.evaluate; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'dvclive', 'dvc', 'seaborn', 'pandas', 'hydra')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
