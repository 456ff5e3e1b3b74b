"""Own sets (data tests): a folder of labelled pictures and a Kaggle-layout CSV, good and bad,
made here, read into MNIST's form and mixed into the training set by preprocess."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from mnist_classifier import catalogue, config, dataset, demo_digits, own_sets
from mnist_classifier.decoding import read_image
from mnist_classifier.errors import PipelineError
from mnist_classifier.files import load_npz, load_own_tests
from mnist_classifier.normalise import to_mnist
from tests.support.params import default_params
from tests.support.pictures import on_paper_digit as paper
from tests.support.pictures import own_folder as folder_set

CLASSES = tuple(str(i) for i in range(10))
ROOT = Path("data/own")


def own(path: Path, kind: str = "folder", fraction: float = 0.2) -> catalogue.OwnSet:
    return catalogue.OwnSet(name="mine", kind=kind, path=path, test_fraction=fraction)


def split(labels: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    return dataset.split_indices(labels, fraction, seed=0, at_least_one=True)


def test_a_folder_set_is_read_as_predict_reads_pictures_and_split_by_class(tmp_path: Path) -> None:
    paths = folder_set(tmp_path / "mine", per_class=5)
    train, test = own_sets.read_own_set(own(tmp_path / "mine"), CLASSES, split)
    assert (len(train), len(test)) == (40, 10)
    assert sorted(np.bincount(test.labels, minlength=10)) == [1] * 10  # a fifth of each class
    for pictures in (train, test):
        for pixels, label, source in zip(pictures.x, pictures.labels, pictures.sources):
            path = Path(source)
            assert path in paths and path.parent.name == CLASSES[label]
            # The very digit predict would give the model for this file.
            np.testing.assert_array_equal(pixels, to_mnist(read_image(path)).reshape(-1))


def test_a_folder_with_train_and_test_keeps_that_split(tmp_path: Path) -> None:
    folder_set(tmp_path / "mine" / "train", per_class=2)
    folder_set(tmp_path / "mine" / "test", per_class=1, seed=100)
    train, test = own_sets.read_own_set(own(tmp_path / "mine"), CLASSES, split)
    assert (len(train), len(test)) == (20, 10)
    assert all("/test/" in s for s in test.sources) and all("/train/" in s for s in train.sources)


def test_a_picture_saved_twice_counts_once_and_lands_in_one_split(tmp_path: Path) -> None:
    paths = folder_set(tmp_path / "mine", per_class=3)
    for path in paths[:10]:
        path.with_name(f"again-{path.name}").write_bytes(path.read_bytes())
    train, test = own_sets.read_own_set(own(tmp_path / "mine"), CLASSES, split)
    assert len(train) + len(test) == 30
    keys = [bytes(x) for x in np.concatenate([train.x, test.x])]
    assert len(set(keys)) == len(keys)


def _bad_folder(root: Path, case: str) -> str:
    """Break a good folder set one way; the words its message must hold."""
    folder_set(root, per_class=2)
    if case == "not a class":
        (root / "eleven").mkdir()
        (root / "eleven" / "a.png").write_bytes((root / "1" / "p1.png").read_bytes())
        return "eleven: folder 'eleven' is no class name"
    if case == "not a picture":
        (root / "3" / "notes.txt").write_text("three")
        return "3/notes.txt: not a picture"
    if case == "unreadable picture":
        (root / "4" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
        return "4/broken.png: "
    if case == "blank picture":
        Image.new("L", (64, 64), 230).save(root / "5" / "blank.png")
        return "5/blank.png: no ink found"
    if case == "tiny picture":
        Image.new("L", (1, 1), 0).save(root / "6" / "dot.png")
        return "6/dot.png: the picture is 1x1 pixels"
    if case == "two labels":
        (root / "8" / "same.png").write_bytes((root / "7" / "p7.png").read_bytes())
        return "the same digit as"
    raise AssertionError(case)


BAD_FOLDERS = [
    "not a class",
    "not a picture",
    "unreadable picture",
    "blank picture",
    "tiny picture",
    "two labels",
]


@pytest.mark.parametrize("case", BAD_FOLDERS)
def test_a_bad_file_is_one_line_naming_it_and_nothing_is_written(
    tmp_path: Path, tiny_raw: tuple, case: str
) -> None:
    words = _bad_folder(tmp_path / "data" / "own" / "mine", case)
    out = tmp_path / "processed"
    with pytest.raises(PipelineError) as err:
        _preprocess(tiny_raw, tmp_path, out, "mine")
    lines = str(err.value).splitlines()
    assert "are refused" in lines[0] and "nothing was written" in lines[0], lines
    assert len(lines) == 2 and words in lines[1], lines
    assert not out.exists()


def test_every_bad_file_is_listed_in_one_run(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    folder_set(root)
    for i in range(3):
        (root / "2" / f"junk{i}.gif").write_text("x")
    (root / "2" / "blank.png").write_bytes(b"")
    with pytest.raises(PipelineError) as err:
        own_sets.read_own_set(own(root), CLASSES, split)
    lines = str(err.value).splitlines()
    assert lines[0].startswith("4 of 24 entries") and len(lines) == 5, lines


def test_the_same_digit_in_train_and_test_is_refused(tmp_path: Path) -> None:
    folder_set(tmp_path / "mine" / "train")
    folder_set(tmp_path / "mine" / "test", per_class=1, seed=100)
    copy = tmp_path / "mine" / "test" / "3" / "leak.png"
    copy.write_bytes((tmp_path / "mine" / "train" / "3" / "p3.png").read_bytes())
    with pytest.raises(PipelineError, match="leak.png: the same digit as .*p3.png, in the train split"):
        own_sets.read_own_set(own(tmp_path / "mine"), CLASSES, split)


def write_csv(path: Path, rows: list[list[object]], header: list[str] | None = None) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header or own_sets.CSV_HEADER)
        writer.writerows(rows)
    return path


def test_a_kaggle_csv_in_mnist_form_is_taken_as_it_is_and_another_is_normalised(tmp_path: Path) -> None:
    mnist_like = to_mnist(np.asarray(paper(7, 1), dtype=np.float32) / 255).reshape(-1)
    dark_on_light = np.asarray(paper(3, 2).resize((28, 28)), dtype=np.uint8).reshape(-1)  # not MNIST's form
    rows = [[7, *mnist_like]] * 1 + [[3, *dark_on_light]]
    rows += [
        [d, *to_mnist(np.asarray(paper(d, 10 + d), dtype=np.float32) / 255).reshape(-1)] for d in range(10)
    ]
    path = write_csv(tmp_path / "digits.csv", rows)
    train, test = own_sets.read_own_set(own(path, "csv", 0.2), CLASSES, split)
    everything = {s: (x, y) for p in (train, test) for s, x, y in zip(p.sources, p.x, p.labels)}
    assert len(everything) == 12
    x, y = everything[f"{path}, line 2"]
    np.testing.assert_array_equal(x, mnist_like)  # taken as it is
    x, y = everything[f"{path}, line 3"]
    assert y == 3 and own_sets.in_mnist_form(x)  # brought into MNIST's form: light on dark, in the box


BAD_CSV = {
    "header": ([], ["label", "p0"], "line 1: the header is label,p0"),
    "short row": ([[1, 2, 3]], None, "line 2: 3 values, not 785"),
    "label": ([[10] + [0] * 784], None, "line 2: label 10 is outside 0-9"),
    "pixel": ([[1] + [300] * 784], None, "line 2: pixels must be 0-255"),
    "not a number": ([["one"] + [0] * 784], None, "line 2: not all whole numbers"),
    "blank row": ([[1] + [0] * 784], None, "line 2: no ink found"),
}


@pytest.mark.parametrize("case", list(BAD_CSV))
def test_a_bad_csv_row_is_one_line_with_its_line_number(tmp_path: Path, case: str) -> None:
    rows, header, words = BAD_CSV[case]
    path = write_csv(tmp_path / "digits.csv", rows, header)
    with pytest.raises(PipelineError) as err:
        own_sets.read_own_set(own(path, "csv"), CLASSES, split)
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and words in lines[1], lines


def _catalogue(tmp_path: Path, entries: dict) -> Path:
    path = tmp_path / "datasets.yaml"
    path.write_text(yaml.safe_dump({"tiny": {}, "own": entries}))
    return path


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"kind": "zip", "path": "data/own/mine"}, "kind must be one of folder, csv"),
        ({"kind": "folder", "path": "/etc"}, "inside data/own/"),
        ({"kind": "folder", "path": "data/own/../../etc"}, "inside data/own/"),
        ({"kind": "folder", "path": "data/elsewhere"}, "inside data/own/"),
        ({"kind": "folder", "path": "data/own/mine", "test_fraction": 1.5}, "between 0 and 1"),
    ],
)
def test_the_catalogue_refuses_an_own_set_it_could_not_watch(tmp_path: Path, entry: dict, words: str) -> None:
    with pytest.raises(PipelineError, match=words.replace(".", r"\.")):
        catalogue.load_own_set(_catalogue(tmp_path, {"mine": entry}), "mine", ROOT)


def test_an_unknown_own_set_names_the_known_ones(tmp_path: Path) -> None:
    path = _catalogue(tmp_path, {"mine": {"kind": "csv", "path": "data/own/m.csv"}})
    with pytest.raises(PipelineError, match="known own sets: mine"):
        catalogue.load_own_set(path, "yours", ROOT)
    with pytest.raises(PipelineError, match="holds your own sets"):
        catalogue.load_dataset(path, "own")


@pytest.mark.parametrize(
    ("mix", "words"),
    [
        ({"sets": "mine", "weight": 1.0}, "`mix.sets` is 'mine'"),
        ({"sets": ["a", "a"], "weight": 1.0}, "distinct"),
        ({"sets": [], "weight": -1}, "`mix.weight` is -1"),
        ({"sets": []}, "lacks `mix.weight`"),
    ],
)
def test_mix_params_are_checked(mix: dict, words: str) -> None:
    raw = {**default_params(), "mix": mix}
    with pytest.raises(PipelineError, match=words):
        config.preprocess_params(raw)


def _preprocess(tiny: tuple, project: Path, out: Path, name: str, weight: float = 3.0) -> None:
    """preprocess() of the tiny dataset with own set data/own/<name> under project/ mixed in."""
    raw, ds = tiny
    entry = catalogue.OwnSet(
        name=name, kind="folder", path=project / "data" / "own" / name, test_fraction=0.2
    )
    dataset.preprocess(ds, raw, out, 0.2, 0, (entry,), config.Mix(sets=(name,), weight=weight))


@pytest.mark.parametrize("weight", [3.0, 0.0])
def test_preprocess_mixes_the_own_training_split_with_its_weight_and_keeps_its_test_apart(
    tmp_path: Path, tiny_raw: tuple, processed: Path, weight: float
) -> None:
    folder_set(tmp_path / "data" / "own" / "mine", per_class=5)
    out = tmp_path / "processed"
    _preprocess(tiny_raw, tmp_path, out, "mine", weight)
    base = load_npz(processed / "train.npz", ("x", "y"))
    mixed = load_npz(out / "train.npz", ("x", "y"), optional=("w",))
    n = len(base["x"])
    np.testing.assert_array_equal(mixed["x"][:n], base["x"])  # the dataset's rows, as without mixing
    if weight:
        assert len(mixed["x"]) == n + 40
        np.testing.assert_array_equal(mixed["w"], [1.0] * n + [weight] * 40)
    else:  # scored, never trained on
        assert len(mixed["x"]) == n and "w" not in mixed
    for name in ("val", "test"):
        np.testing.assert_array_equal(
            load_npz(out / f"{name}.npz", ("x",))["x"], load_npz(processed / f"{name}.npz", ("x",))["x"]
        )
    own_test = load_own_tests(out / "own_test.npz")
    assert list(own_test) == ["mine"] and own_test["mine"][0].shape == (10, 784)
    assert load_own_tests(processed / "own_test.npz") == {}  # none mixed: none to score


def test_the_demo_set_is_rendered_the_same_every_time_with_its_last_quarter_held_out(tmp_path: Path) -> None:
    train, test = demo_digits.write_demo(tmp_path / "a", count=40)
    demo_digits.write_demo(tmp_path / "b", count=40)
    assert (train, test) == (30, 10)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.png"))
    for f in files:  # byte for byte: `make demo-digits` matches a committed .dvc file
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    index = {
        split: sorted(int(f.stem.split("-")[1]) for f in files if f.parts[0] == split)
        for split in ("train", "test")
    }
    assert max(index["train"]) < min(index["test"])  # one piece at the end: other writers
    read_train, read_test = own_sets.read_own_set(own(tmp_path / "a"), CLASSES, split)
    assert (len(read_train), len(read_test)) == (30, 10)  # every rendered picture reads as one digit


def _encoded(fmt: str) -> bytes:
    import io

    out = io.BytesIO()
    paper(4, 0).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(("fmt", "suffix"), [("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".png")])
def test_a_collected_picture_is_filed_once_by_content_where_the_folder_reader_takes_it(
    tmp_path: Path, fmt: str, suffix: str
) -> None:
    body = _encoded(fmt)
    path, count = own_sets.save_picture(tmp_path, "4", body)
    assert path.parent == tmp_path / "4" and path.suffix == suffix and count == 1
    assert own_sets.save_picture(tmp_path, "4", body) == (path, 1)  # a double click: one file
    pictures, seen = own_sets.read_folder(tmp_path, CLASSES, problems := [])
    assert seen == 1 and not problems and list(pictures.labels) == [4]
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary file left


def test_collecting_stops_at_its_limit_and_refuses_a_class_that_is_no_folder_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(own_sets, "MAX_COLLECTED", 2)
    for digit in (1, 2):
        own_sets.save_picture(tmp_path, str(digit), _encoded("PNG")[:-12] + bytes([digit]) * 12)
    assert own_sets.save_picture(tmp_path, "3", _encoded("PNG")) == (None, 2)
    assert not (tmp_path / "3").exists()
    for label in ("T-shirt/top", "..", ".hidden"):
        with pytest.raises(PipelineError, match="cannot name a folder"):
            own_sets.save_picture(tmp_path, label, _encoded("PNG"))
