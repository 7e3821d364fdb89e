"""`autometa kb build`: studies per data set, descriptors, parallel, resumable after a kill; pretrained bases."""

import dataclasses
import gzip
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from autometa.hpo import METAFEATURES
from autometa.hpo.build import (
    ABANDONED_KEY,
    build_knowledge_base,
    export_knowledge_base,
    open_storage,
    read_knowledge_base,
    subsample,
)
from autometa.hpo.knowledge_base import DESCRIPTOR_KEY, KnowledgeBase
from autometa.hpo.spaces import ERROR_KEY

pytest.importorskip("pmlb", reason="kb build reads PMLB's cache layout through the pmlb package")
optuna.logging.set_verbosity(optuna.logging.ERROR)
REPO = Path(__file__).resolve().parents[1]
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)


def write_pmlb(root: Path, specs: dict) -> Path:
    """Tiny data sets in PMLB's cache layout: ``<root>/<name>/<name>.tsv.gz`` and ``index.csv``."""
    rows = []
    for i, (name, (task, n_rows, n_features)) in enumerate(specs.items()):
        rng = np.random.default_rng(i)
        X = rng.normal(size=(n_rows, n_features))
        signal_ = X[:, 0] + 0.5 * rng.normal(size=n_rows)
        target = (signal_ > 0).astype(int) if task == "classification" else signal_
        frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(n_features)]).assign(target=target)
        (root / name).mkdir(parents=True)
        frame.to_csv(root / name / f"{name}.tsv.gz", sep="\t", compression="gzip", index=False)
        rows.append((name, task, n_rows, n_features, 2 if task == "classification" else 0))
    pd.DataFrame(rows, columns=["name", "task", "n_rows", "n_features", "n_classes"]).to_csv(
        root / "index.csv", index=False)
    return root


@pytest.fixture
def data_dir(tmp_path):
    return write_pmlb(tmp_path / "pmlb", {
        "alpha": ("classification", 90, 3), "beta": ("classification", 60, 4),
        "gamma": ("classification", 120, 2), "delta": ("regression", 50, 2),
    })


def _counted(study):
    return [t for t in study.get_trials(states=FINISHED) if not t.user_attrs.get(ABANDONED_KEY)]


def test_build_in_parallel_stores_studies_descriptors_and_resumes_to_nothing(data_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    results = build_knowledge_base("logistic_regression", data_dir, url, n_trials=4, n_jobs=2, quiet=True,
                                   max_rows=80)
    assert sorted(r["dataset"] for r in results) == ["alpha", "beta", "gamma"]  # the classification ones
    assert all(r["trials_run"] == 4 and r["finished"] == 4 for r in results)
    storage = open_storage(url)
    for name in ("alpha", "beta", "gamma"):
        study = optuna.load_study(study_name=f"logistic_regression:{name}", storage=storage)
        assert len(_counted(study)) == 4 and study.direction == optuna.study.StudyDirection.MAXIMIZE
        assert set(study.user_attrs[DESCRIPTOR_KEY]) == set(METAFEATURES)
        assert study.user_attrs["autometa:space_version"] == "1"
    gamma = optuna.load_study(study_name="logistic_regression:gamma", storage=storage)
    assert gamma.user_attrs["autometa:n_rows"] == 80 and gamma.user_attrs["autometa:n_rows_full"] == 120
    again = build_knowledge_base("logistic_regression", data_dir, url, n_trials=4, n_jobs=1, quiet=True,
                                 max_rows=80)
    assert [r["trials_run"] for r in again] == [0, 0, 0]

    out = tmp_path / "kb.json.gz"
    kb = export_knowledge_base(url, out)
    assert gzip.decompress(out.read_bytes()).startswith(b"{")
    loaded, info = read_knowledge_base(out)
    assert loaded.names == kb.names == [f"logistic_regression:{n}" for n in ("alpha", "beta", "gamma")]
    assert all(task.descriptor is not None and len(task.trials) == 4 for task in loaded)
    assert info["space"] == "logistic_regression" and info["space_version"] == "1" and info["cv"] == 3
    with pytest.raises(ValueError, match="no study of 'logistic_regression' has 5 finished trials"):
        export_knowledge_base(url, out, min_trials=5)
    plain = tmp_path / "kb.json"
    export_knowledge_base(url, plain, space="logistic_regression")
    assert KnowledgeBase.load(plain).names == loaded.names  # the plain file is an ordinary KB file


# The build in a subprocess: the objective of "beta"'s trial 2 announces itself and hangs, to be killed there.
_KILLED_BUILD = """
import sys, time
from pathlib import Path
import autometa.hpo.build as build
real = build.make_objective
def make_objective(space, X, y, **kwargs):
    objective = real(space, X, y, **kwargs)
    def hanging(trial):
        if trial.study.study_name.endswith(":beta") and trial.number == 2:
            Path(sys.argv[3]).write_text("running")
            time.sleep(600)
        return objective(trial)
    hanging.direction, hanging.metric = objective.direction, objective.metric
    return hanging
build.make_objective = make_objective
build.build_knowledge_base("logistic_regression", sys.argv[1], sys.argv[2], n_trials=5,
                           datasets=["alpha", "beta", "gamma"], n_jobs=1, quiet=True)
"""


def test_a_killed_build_resumes_without_losing_or_repeating_trials(data_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    marker = tmp_path / "marker"
    process = subprocess.Popen([sys.executable, "-c", _KILLED_BUILD, str(data_dir), url, str(marker)], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert process.poll() is None, "the build ended before reaching the hanging trial"
            assert time.monotonic() < deadline, "the build never reached the hanging trial"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    storage = open_storage(url)
    before = {s.study_name: [(t.number, t.state, t.params, t.value) for t in _counted(optuna.load_study(
        study_name=s.study_name, storage=storage))] for s in storage.get_all_studies()}
    assert len(before["logistic_regression:alpha"]) == 5 and len(before["logistic_regression:beta"]) == 2
    assert "logistic_regression:gamma" not in before

    from autometa.apps.cli import main

    assert main(["kb", "build", "--estimator", "logistic_regression", "--data-dir", str(data_dir),
                 "--datasets", "alpha,beta,gamma", "--trials", "5", "--storage", url, "--quiet"]) == 0
    storage = open_storage(url)
    for name in ("alpha", "beta", "gamma"):
        study = optuna.load_study(study_name=f"logistic_regression:{name}", storage=storage)
        counted = _counted(study)
        assert len(counted) == 5
        assert len({t.number for t in counted}) == 5
        kept = [(t.number, t.state, t.params, t.value) for t in counted][: len(before.get(study.study_name, []))]
        assert kept == before.get(study.study_name, [])  # finished trials kept as they were, not rerun
    beta = optuna.load_study(study_name="logistic_regression:beta", storage=storage)
    killed = beta.trials[2]
    assert killed.state == optuna.trial.TrialState.FAIL and killed.user_attrs[ABANDONED_KEY] is True
    assert killed.user_attrs[ERROR_KEY].startswith("abandoned")
    assert len(beta.trials) == 6  # five counted + the abandoned one
    alpha = optuna.load_study(study_name="logistic_regression:alpha", storage=storage)
    assert len(alpha.trials) == 5  # nothing added to a finished study


def test_journal_storage_and_a_stale_running_trial(data_dir, tmp_path):
    path = tmp_path / "kb.log"
    build_knowledge_base("logistic_regression", data_dir, f"journal://{path}", n_trials=2, datasets=["beta"],
                         quiet=True)
    storage = open_storage(path)  # a bare .log path is a journal too
    study = optuna.load_study(study_name="logistic_regression:beta", storage=storage)
    study.ask()  # a trial left RUNNING, as by a dead process
    result, = build_knowledge_base("logistic_regression", data_dir, str(path), n_trials=3, datasets=["beta"],
                                   quiet=True)
    assert result["abandoned"] == 1 and result["trials_run"] == 1 and result["finished"] == 3
    states = [t.state.name for t in optuna.load_study(study_name="logistic_regression:beta", storage=storage).trials]
    assert states == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]


def test_user_mistakes_are_reported_clearly(data_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    with pytest.raises(ValueError, match="data set 'alpah' is not in .*did you mean 'alpha'"):
        build_knowledge_base("logistic_regression", data_dir, url, datasets=["alpah"])
    with pytest.raises(ValueError, match="'delta' is a regression task but search space 'svc' is for classification"):
        build_knowledge_base("svc", data_dir, url, datasets=["delta"])
    with pytest.raises(ValueError, match="neither a URL"):
        build_knowledge_base("svc", data_dir, str(tmp_path / "kb.db"), datasets=["alpha"])
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        build_knowledge_base("svc", data_dir, f"sqlite:///{tmp_path}/no/such/kb.db", datasets=["alpha"])
    with pytest.raises(FileNotFoundError, match="no PMLB index"):
        build_knowledge_base("svc", tmp_path / "nowhere", url)
    with pytest.raises(ValueError, match="--trials must be a positive integer"):
        build_knowledge_base("svc", data_dir, url, n_trials=0)
    # a study built with another version of the space is refused, naming both versions
    study = optuna.create_study(storage=url, study_name="svc:alpha", direction="maximize")
    study.set_user_attr("autometa:space", "svc")
    study.set_user_attr("autometa:space_version", "0")
    with pytest.raises(ValueError, match="(?s)1 of 1 data sets failed.*version '0', not 'svc' version '1'"):
        build_knowledge_base("svc", data_dir, url, n_trials=1, datasets=["alpha"], quiet=True)


def test_cli_reports_errors_as_autometa_error(data_dir, tmp_path, capsys):
    from autometa.apps.cli import main

    assert main(["kb", "build", "--estimator", "nope", "--data-dir", str(data_dir), "--storage",
                 f"sqlite:///{tmp_path / 'kb.db'}"]) == 2
    assert "autometa: error: unknown search space 'nope'" in capsys.readouterr().err


def test_stratified_subsample_keeps_class_shares_and_rare_classes():
    y = pd.Series([0] * 900 + [1] * 97 + [2] * 3)
    X = pd.DataFrame({"i": np.arange(len(y))})
    Xs, ys = subsample(X, y, 100, seed=0, min_per_class=3)
    counts = ys.value_counts().to_dict()
    assert counts == {0: 90, 1: 10, 2: 3} or sum(counts.values()) <= 103
    assert counts[2] == 3 and abs(counts[0] - 90) <= 1
    assert (Xs["i"].to_numpy() == ys.index.to_numpy()).all() and Xs["i"].is_monotonic_increasing
    again, _ = subsample(X, y, 100, seed=0, min_per_class=3)
    assert again.equals(Xs)
    assert subsample(X, y, None)[0] is X
    Xr, yr = subsample(X, y.astype(float), 50, seed=1, classification=False)
    assert len(Xr) == 50


def test_pretrained_knowledge_bases_load_offline_with_descriptors(monkeypatch):
    from autometa.hpo import pretrained, spaces

    names = pretrained.pretrained_names()
    assert "hist_gradient_boosting" in names
    for name in names:
        kb = pretrained.load_pretrained(name)
        assert len(kb) >= 1
        assert all(task.descriptor is not None and set(task.descriptor) == set(METAFEATURES) for task in kb)
        assert all(task.name.startswith(f"{name}:") for task in kb)
        assert set(kb.search_space()) == set(spaces.get_space(name).distributions())
        assert pretrained.pretrained_info(name)["space_version"] == spaces.get_space(name).version
    with pytest.raises(ValueError, match="no pretrained knowledge base named 'nope'; available: .*hist_gradient"):
        pretrained.load_pretrained("nope")
    bumped = dataclasses.replace(spaces.SEARCH_SPACES["hist_gradient_boosting"], version="999")
    monkeypatch.setitem(spaces.SEARCH_SPACES, "hist_gradient_boosting", bumped)
    with pytest.raises(ValueError, match="built on version '1' .* defines version '999'; rebuild it"):
        pretrained.load_pretrained("hist_gradient_boosting")
    assert len(pretrained.load_pretrained("hist_gradient_boosting", check_version=False)) >= 1


def test_pretrained_descriptor_subsamples_like_the_build_and_feeds_the_sampler():
    from autometa.hpo.pretrained import load_pretrained, pretrained_descriptor, pretrained_info
    from autometa.hpo.sampler import MetaLearnedSampler

    max_rows = pretrained_info("hist_gradient_boosting")["max_rows"]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3 * max_rows, 4))
    y = (X[:, 0] > 0).astype(int)
    descriptor = pretrained_descriptor("hist_gradient_boosting", X, y)
    assert set(descriptor) == set(METAFEATURES)
    assert descriptor["log10_n_rows"] == pytest.approx(np.log10(max_rows), abs=0.01)
    sampler = MetaLearnedSampler(load_pretrained("hist_gradient_boosting"), descriptor=descriptor, n_warm_start=2)
    assert len(sampler.portfolio) == 2


def test_pretrained_is_parsed_once_and_each_load_is_independent():
    from autometa.hpo.knowledge_base import Task
    from autometa.hpo.pretrained import _parse, load_pretrained, pretrained_info

    first = load_pretrained("svc")
    first._append(Task("svc:extra", ("maximize",)))
    info = pretrained_info("svc")
    info["datasets"].clear()
    second = load_pretrained("svc")
    assert "svc:extra" in first.names and "svc:extra" not in second.names
    assert len(pretrained_info("svc")["datasets"]) == len(second)
    assert _parse.cache_info().hits >= 1


def test_every_pretrained_knowledge_base_ships_its_sampler_surrogate(monkeypatch):
    import autometa.hpo.surrogate
    from autometa.hpo.encoded_tasks import EncodedTasks
    from autometa.hpo.pretrained import load_pretrained, pretrained_names, shipped_surrogate
    from autometa.hpo.sampler import META_TRAIN_SEED, META_TRAIN_STEPS, usable_tasks

    def no_training(*args, **kwargs):
        raise AssertionError("meta-trained a surrogate that ships with the knowledge base")

    monkeypatch.setattr(autometa.hpo.surrogate, "meta_train_surrogate", no_training)
    for name in pretrained_names():
        data = EncodedTasks(usable_tasks(load_pretrained(name)))
        # rebuild a stale file with `autometa kb surrogate autometa/hpo/pretrained/<name>.json.gz`
        model = shipped_surrogate(data.surrogate_key(META_TRAIN_STEPS, META_TRAIN_SEED))
        assert model is not None, f"{name}: no shipped surrogate for the current knowledge base and encoding"
        assert model.task_heads.shape == (len(data.tasks_x), len(model.prior_mean))
        assert data.meta_trained(META_TRAIN_STEPS, META_TRAIN_SEED) is model
    assert shipped_surrogate("not a key") is None


def test_kb_surrogate_writes_the_samplers_surrogate_beside_the_file(tmp_path, capsys):
    from autometa.apps.cli import main
    from autometa.hpo.encoded_tasks import EncodedTasks
    from autometa.hpo.sampler import META_TRAIN_SEED, usable_tasks
    from autometa.hpo.surrogate import NumpySurrogate, meta_train_surrogate

    studies = []
    for i in range(3):
        study = optuna.create_study(study_name=f"t{i}", sampler=optuna.samplers.RandomSampler(seed=i))
        study.optimize(lambda t: (t.suggest_float("x", 0, 1) - 0.3 * i) ** 2, n_trials=12)
        studies.append(study)
    kb = KnowledgeBase.from_studies(studies)
    kb.save(tmp_path / "mine.json")
    assert main(["kb", "surrogate", str(tmp_path / "mine.json"), "--steps", "5"]) == 0
    assert f"wrote {tmp_path / 'mine.surrogate.npz'}" in capsys.readouterr().out
    key, model = NumpySurrogate.load(tmp_path / "mine.surrogate.npz")
    data = EncodedTasks(usable_tasks(KnowledgeBase.load(tmp_path / "mine.json")))
    assert key == data.surrogate_key(5, META_TRAIN_SEED)
    trained = meta_train_surrogate(data.tasks_x, data.tasks_y, steps=5, seed=META_TRAIN_SEED)
    x = np.linspace(0, 1, 7)[:, None]
    assert np.allclose(model.predict(x[:3], np.array([0.0, 0.5, 1.0]), x)[0],
                       trained.predict(x[:3], np.array([0.0, 0.5, 1.0]), x)[0])
    assert np.array_equal(model.task_heads, trained.task_heads)
    assert main(["kb", "surrogate", str(tmp_path / "mine.json"), "--steps", "0"]) == 2
    assert "--steps must be a positive number" in capsys.readouterr().err
    assert main(["kb", "surrogate", str(tmp_path / "missing.json")]) == 2
