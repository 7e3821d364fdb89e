import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.validation import check_is_fitted

from autometa.data._paths import data_root
from autometa.data.lake import LakeResult, LakeRun, load_lake_runs, make_lake_runs, pixel_distances, score_lake
from autometa.data.omniglot import _read_images, _scan_sources

SIZE = 12


def png(seed: int) -> bytes:
    """A distinct random 1-bit PNG per seed."""
    pixels = np.random.default_rng(seed).random((SIZE, SIZE)) > 0.3
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("1").save(buffer, format="PNG")
    return buffer.getvalue()


def write_tree(top: Path, alphabets: dict[str, int], n_drawers: int = 4) -> Path:
    """An Omniglot-layout folder with a distinct image per (alphabet, character, drawer)."""
    seed = 0
    for alphabet, n_characters in alphabets.items():
        for character in range(1, n_characters + 1):
            folder = top / alphabet / f"character{character:02d}"
            folder.mkdir(parents=True)
            for drawer in range(1, n_drawers + 1):
                seed += 1
                (folder / f"{100 + character:04d}_{drawer:02d}.png").write_bytes(png(seed))
    return top



def pixel_knn():
    flatten = FunctionTransformer(lambda x: x.reshape(len(x), -1))
    return make_pipeline(flatten, KNeighborsClassifier(n_neighbors=1))


def oracle(runs: list[LakeRun]):
    """A distance that knows every run's answers: zero to the true class, one elsewhere."""
    answers = {run.test_x.tobytes(): run.test_y for run in runs}

    def distance(train_x, test_x):
        return (answers[test_x.tobytes()][:, None] != np.arange(len(train_x))).astype(float)

    return distance


def check_provenance(runs_dir: Path, sources) -> None:
    """Each run: one alphabet, training by one drawer, queries by another, labels true."""
    files = _scan_sources(sources)
    origin = dict(zip(_read_images(files), files))
    for run_dir in sorted(runs_dir.iterdir()):
        pairs = [line.split() for line in (run_dir / "class_labels.txt").read_text().splitlines()]
        queries = [origin[(runs_dir / query).read_bytes()] for query, _ in pairs]
        answers = [origin[(runs_dir / answer).read_bytes()] for _, answer in pairs]
        training = [origin[path.read_bytes()] for path in (run_dir / "training").iterdir()]
        assert len({f.alphabet for f in training + queries}) == 1
        assert len({f.character for f in training}) == len(training) == len(queries)
        assert len({f.drawer for f in training}) == 1 and len({f.drawer for f in queries}) == 1
        assert training[0].drawer != queries[0].drawer
        assert [q.character for q in queries] == [a.character for a in answers]


@pytest.fixture
def synthetic_runs(tmp_path):
    tree = write_tree(tmp_path / "images_background", {"Greek": 6, "Latin": 4, "Tagalog": 2})
    runs_dir = make_lake_runs(tree, tmp_path / "runs", n_runs=4, n_way=4, seed=1)
    return tree, runs_dir


def test_make_and_load_synthetic_runs(synthetic_runs):
    tree, runs_dir = synthetic_runs
    assert sorted(p.name for p in runs_dir.iterdir()) == ["run01", "run02", "run03", "run04"]
    training = sorted(p.name for p in (runs_dir / "run01" / "training").iterdir())
    assert training == [f"class0{i}.png" for i in range(1, 5)]
    check_provenance(runs_dir, [tree])
    runs = load_lake_runs(runs_dir, image_size=SIZE)
    assert [run.name for run in runs] == ["run01", "run02", "run03", "run04"]
    for run in runs:
        assert run.train_x.shape == run.test_x.shape == (4, SIZE, SIZE)
        assert run.train_x.dtype == run.test_x.dtype == np.float32
        np.testing.assert_array_equal(run.train_y, np.arange(4))
        np.testing.assert_array_equal(np.sort(run.test_y), np.arange(4))
        assert run.test_y.dtype == np.int64


def test_make_runs_is_seeded_and_cycles_alphabets(tmp_path):
    tree = write_tree(tmp_path / "images_background", {"Greek": 6, "Latin": 4, "Tagalog": 3})

    def contents(seed, name):
        out = make_lake_runs(tree, tmp_path / name, n_runs=4, n_way=3, seed=seed)
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    assert contents(0, "a") == contents(0, "b") != contents(1, "c")
    latin = make_lake_runs(tree, tmp_path / "latin", alphabets="Latin", n_runs=2, n_way=4)
    check_provenance(latin, [tree])
    runs = _scan_sources([tree])
    by_bytes = dict(zip(_read_images(runs), runs))
    alphabet = {
        run_dir.name: by_bytes[(run_dir / "training" / "class01.png").read_bytes()].alphabet
        for run_dir in (tmp_path / "a").iterdir()
    }
    # All 3 alphabets have 3 characters, so 4 runs use each of them at least once.
    assert set(alphabet.values()) == {"Greek", "Latin", "Tagalog"}


def test_make_runs_refuses_bad_requests(synthetic_runs, tmp_path):
    tree, runs_dir = synthetic_runs
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        make_lake_runs(tree, runs_dir)
    with pytest.raises(ValueError, match=r"'Klingon'.*Greek, Latin, Tagalog"):
        make_lake_runs(tree, tmp_path / "new", alphabets=["Klingon"])
    with pytest.raises(ValueError, match=r"no alphabet has 20 characters.*Greek \(6\)"):
        make_lake_runs(tree, tmp_path / "new")


def test_score_callables_and_estimators(synthetic_runs):
    _, runs_dir = synthetic_runs
    runs = load_lake_runs(runs_dir, image_size=SIZE)
    assert score_lake(oracle(runs), runs).mean_error == 0.0
    # Queries are distinct random images: pixel 1-NN is a guess, agreeing with its sklearn twin.
    by_callable = score_lake(pixel_distances, runs)
    model = pixel_knn()
    by_pipeline = score_lake(model, runs)
    assert by_pipeline.per_run_error == by_callable.per_run_error
    with pytest.raises(NotFittedError):
        check_is_fitted(model)  # score_lake fits clones

    class LastClass:  # not a scikit-learn estimator: fitted in place
        def fit(self, x, y):
            self.last_ = int(y.max())
            return self

        def predict(self, x):
            return np.full(len(x), self.last_)

    result = score_lake(LastClass(), runs)
    assert set(result.per_run_error.values()) == {0.75}
    with pytest.raises(ValueError, match=r"shape \(4, 3\) on run01; expected \(4, 4\)"):
        score_lake(lambda train_x, test_x: np.zeros((len(test_x), 3)), runs)
    with pytest.raises(TypeError, match="fit/predict"):
        score_lake(42, runs)


def test_result_format():
    result = LakeResult({"run01": 0.25, "run02": 0.5})
    assert result.mean_error == 0.375
    assert str(result).splitlines() == ["run01 error: 25.0%", "run02 error: 50.0%", "mean error: 37.5%"]


def test_load_errors_name_file_and_line(synthetic_runs, tmp_path):
    _, runs_dir = synthetic_runs
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_lake_runs(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no runs in"):
        load_lake_runs(tmp_path / "runs" / "run01")
    labels = runs_dir / "run02" / "class_labels.txt"
    lines = labels.read_text().splitlines()
    bad = {  # a wrong line 3 -> the error it raises
        "run02/test/item01.png": (ValueError, r"class_labels.txt, line 3: expected '<test image> <training image>'"),
        "run02/test/item99.png run02/training/class01.png": (FileNotFoundError, r"line 3: query .*item99"),
        "run02/test/item01.png run01/training/class01.png": (ValueError, r"line 3: run01/training/class01.png"),
    }
    for line, (error, message) in bad.items():
        labels.write_text("\n".join(lines[:2] + [line] + lines[3:]))
        with pytest.raises(error, match=message):
            load_lake_runs(runs_dir)
    labels.unlink()
    with pytest.raises(FileNotFoundError, match="run02.class_labels.txt not found"):
        load_lake_runs(runs_dir)


def test_lake_runs_from_small_background_zips(tmp_path):
    root = data_root()
    zips = [root / "omniglot" / f"images_background_small{i}.zip" for i in (1, 2)] if root else []
    if not zips or not all(z.is_file() for z in zips):
        pytest.skip(f"Omniglot zips not found in {root / 'omniglot' if root else '$AUTOMETA_DATA'}")
    runs_dir = make_lake_runs(zips, tmp_path / "runs", seed=0)
    check_provenance(runs_dir, zips)
    runs = load_lake_runs(runs_dir)
    assert len(runs) == 20
    for run in runs:
        assert run.train_x.shape == run.test_x.shape == (20, 28, 28)
        np.testing.assert_array_equal(np.sort(run.test_y), np.arange(20))
    assert score_lake(oracle(runs), runs).mean_error == 0.0
    pixels = score_lake(pixel_distances, runs)
    print(f"\npixel 1-NN on 20 runs drawn from the small background zips:\n{pixels}")
    assert 0.5 < pixels.mean_error < 0.95  # far from perfect, better than chance (95%)
    assert score_lake(pixel_knn(), runs).per_run_error == pixels.per_run_error
    assert pixels.format().splitlines()[-1] == f"mean error: {100 * pixels.mean_error:.1f}%"


def test_shipped_omniglot_model_beats_pixels_on_background_runs(tmp_path):
    """``pretrained:omniglot-protonet`` loads by name and classifies one-shot runs far better than pixel 1-NN
    (a sanity check: it trained on every small-set alphabet, so these runs are not held out; its recipe's
    held-out score is the cross-validation of docs/omniglot_model.md)."""
    from autometa.apps.omniglot_recipe import LearnerClassifier
    from autometa.meta import MetaLearner, available_pretrained

    assert "omniglot-protonet" in available_pretrained()
    learner = MetaLearner.load("pretrained:omniglot-protonet")
    assert type(learner).__name__ == "ProtoNet" and learner.config["backbone"] == {"name": "conv4", "image_size": 28}
    root = data_root()
    zips = [root / "omniglot" / f"images_background_small{i}.zip" for i in (1, 2)] if root else []
    if not zips or not all(z.is_file() for z in zips):
        pytest.skip(f"Omniglot zips not found in {root / 'omniglot' if root else '$AUTOMETA_DATA'}")
    runs = load_lake_runs(make_lake_runs(zips, tmp_path / "runs", n_runs=4, seed=0))
    model = score_lake(LearnerClassifier(learner, "cpu", views=1), runs)
    pixels = score_lake(pixel_distances, runs)
    assert model.mean_error < 0.25 and pixels.mean_error > 0.6, (model.mean_error, pixels.mean_error)
