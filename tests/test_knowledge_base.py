"""KnowledgeBase: building from studies and storages, its file format, descriptors, concurrency."""

import json
import math
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage

from autometa.hpo import METAFEATURES, KnowledgeBase
from autometa.hpo.knowledge_base import DESCRIPTOR_KEY, Task

optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective(trial):
    """Trial 1 fails (a NaN value) and trial 2 is pruned, so every study has each state."""
    x = trial.suggest_float("x", -2.0, 2.0)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    if trial.number == 1:
        return math.nan
    if trial.number == 2:
        raise optuna.TrialPruned()
    return x**2 + (kind == "b")


def make_study(storage=None, name=None, seed=0, n_trials=8):
    study = optuna.create_study(storage=storage, study_name=name, sampler=optuna.samplers.RandomSampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    return study


def descriptor(seed=0):
    values = dict.fromkeys(METAFEATURES, float(seed))
    values["target_skewness"] = math.nan
    return values


def test_from_studies_keeps_every_finished_trial_and_its_state():
    study = make_study()
    task = KnowledgeBase.from_studies([study])[study.study_name]
    assert [t.state for t in task.trials][:3] == ["COMPLETE", "FAIL", "PRUNED"]
    assert [t.state for t in task.trials] == [t.state.name for t in study.trials]
    assert task.trials[1].values is None
    assert [t.number for t in task.completed_trials()] == [t.number for t in study.trials if t.state.name == "COMPLETE"]
    assert task.best_value == study.best_value
    assert task.direction == "minimize"


def test_trials_dataframe_holds_params_and_values_of_completed_trials():
    study = make_study()
    table = KnowledgeBase.from_studies([study])[0].trials_dataframe()
    completed = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert list(table.columns) == ["number", "state", "x", "kind", "value"]
    assert table["value"].tolist() == [t.value for t in completed]
    assert table["x"].tolist() == [t.params["x"] for t in completed]


def test_to_frozen_trial_roundtrips_through_optuna():
    study = make_study()
    record = KnowledgeBase.from_studies([study])[0].trials[0]
    frozen = record.to_frozen_trial()
    original = study.trials[0]
    assert (frozen.params, frozen.values, frozen.state) == (original.params, original.values, original.state)


def test_search_space_is_the_union_and_reports_conflicts():
    first, second = make_study(seed=0), optuna.create_study()
    second.optimize(lambda trial: trial.suggest_float("y", 0, 1) + trial.suggest_float("x", -5, 5), n_trials=3)
    kb = KnowledgeBase.from_studies([first, second])
    with pytest.raises(ValueError, match="(?s)x: .*on_conflict='skip'"):
        kb.search_space()
    assert kb.search_space(on_conflict="skip") == {
        "kind": CategoricalDistribution(["a", "b"]),
        "y": FloatDistribution(0, 1),
    }


def test_from_sqlite_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    studies = [make_study(url, f"task-{seed}", seed) for seed in range(2)]
    kb = KnowledgeBase.from_storage(url)
    assert kb.names == ["task-0", "task-1"]
    assert [len(task.trials) for task in kb] == [len(s.trials) for s in studies]
    assert KnowledgeBase.from_storage(url, study_names=["task-1"]).names == ["task-1"]
    with pytest.raises(KeyError, match="no study named 'nope'"):
        KnowledgeBase.from_storage(url, study_names=["nope"])


@pytest.mark.parametrize("as_path", [True, False])
def test_from_journal_file(tmp_path, as_path):
    path = tmp_path / "kb.log"
    study = make_study(JournalStorage(JournalFileBackend(str(path))), "journal-task")
    kb = KnowledgeBase.from_storage(path if as_path else JournalStorage(JournalFileBackend(str(path))))
    assert kb.names == ["journal-task"]
    assert kb[0] == Task.from_study(study)


def test_unknown_storage_string_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="sqlite:///"):
        KnowledgeBase.from_storage(tmp_path / "kb.db")


def test_save_load_roundtrip(tmp_path):
    studies = [make_study(seed=seed) for seed in range(3)]
    kb = KnowledgeBase.from_studies(studies)
    kb.add_study(make_study(seed=9), descriptor=descriptor(1))
    kb.save(tmp_path / "kb.json")
    loaded = KnowledgeBase.load(tmp_path / "kb.json")
    assert list(loaded) == list(kb)
    assert math.isnan(loaded[-1].descriptor["target_skewness"])
    np.testing.assert_array_equal(loaded.descriptor_matrix(), kb.descriptor_matrix())
    assert [p.name for p in tmp_path.iterdir()] == ["kb.json"], "no temporary file is left behind"


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "kb.json"
    KnowledgeBase.from_studies([make_study()]).save(path)
    KnowledgeBase().save(path)
    assert len(KnowledgeBase.load(path)) == 0


def valid_file(tmp_path):
    path = tmp_path / "kb.json"
    KnowledgeBase.from_studies([make_study()]).save(path)
    return path


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda text: text[: len(text) // 2], "corrupt or truncated"),
        (lambda text: "", "corrupt or truncated"),
        (lambda text: json.dumps({"name": "something else"}), "not a knowledge-base file"),
        (lambda text: json.dumps([1, 2]), "not a knowledge-base file"),
        (lambda text: text.replace('"version": 1', '"version": 99'), "upgrade autometa"),
        (lambda text: text.replace('"version": 1', '"version": "1"'), "bad version"),
        (lambda text: text.replace('"state": "COMPLETE"', '"state": "DONE"'), "corrupt knowledge-base file"),
        (lambda text: text.replace('"tasks"', '"jobs"'), "corrupt knowledge-base file"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, edit, match):
    path = valid_file(tmp_path)
    path.write_text(edit(path.read_text()))
    with pytest.raises(ValueError, match=match):
        KnowledgeBase.load(path)


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "kb.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not valid JSON"):
        KnowledgeBase.load(path)


class Exploit:
    """Unpickling this creates a file: proof that a pickle was executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize("protocol", [0, pickle.HIGHEST_PROTOCOL])
def test_pickle_is_never_loaded(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "kb.json"
    path.write_bytes(pickle.dumps(Exploit(marker), protocol=protocol))
    with pytest.raises(ValueError, match="pickle|not valid JSON"):
        KnowledgeBase.load(path)
    assert not marker.exists()


def test_describe_study_stores_the_descriptor_in_user_attrs(tmp_path):
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    study = make_study(url, "described")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 3)), rng.integers(0, 2, 60)
    computed = KnowledgeBase.describe_study(study, X, y)
    stored = optuna.load_study(study_name="described", storage=url).user_attrs[DESCRIPTOR_KEY]
    json.dumps(stored, allow_nan=False)  # strict JSON: NaN is encoded
    assert stored["target_skewness"] == "nan"
    task = KnowledgeBase.from_storage(url)[0]
    assert task.descriptor.keys() == computed.keys()
    np.testing.assert_array_equal(KnowledgeBase.from_storage(url).descriptor_matrix()[0], list(computed.values()))


def test_descriptor_matrix_has_nan_rows_for_undescribed_tasks():
    described = make_study(seed=1)
    described.set_user_attr(DESCRIPTOR_KEY, {"n_classes": 2.0})
    matrix = KnowledgeBase.from_studies([make_study(), described]).descriptor_matrix()
    assert matrix.shape == (2, len(METAFEATURES))
    assert np.isnan(matrix[0]).all()
    assert matrix[1, list(METAFEATURES).index("n_classes")] == 2.0
    assert KnowledgeBase().descriptor_matrix().shape == (0, len(METAFEATURES))


def test_malformed_descriptor_in_user_attrs_names_the_fix():
    study = make_study()
    study.set_user_attr(DESCRIPTOR_KEY, {"n_classes": "two"})
    with pytest.raises(ValueError, match="describe_study"):
        KnowledgeBase.from_studies([study])


def test_add_study_copies_into_a_new_study_and_leaves_the_source_alone(tmp_path):
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    source = make_study(url, "source")
    before = source.get_trials()
    kb = KnowledgeBase.from_storage(url)
    task = kb.add_study(source, descriptor=descriptor())
    assert task.name.startswith("source-") and task.name in optuna.get_all_study_names(url)
    assert optuna.load_study(study_name="source", storage=url).get_trials() == before
    assert DESCRIPTOR_KEY not in source.user_attrs
    assert KnowledgeBase.from_storage(url)[task.name] == task
    assert [t.params for t in task.trials] == [t.params for t in before]


def test_half_copied_study_is_skipped(tmp_path):
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    make_study(url, "done")
    optuna.create_study(storage=url, study_name="copying").set_user_attr("autometa:copy_complete", False)
    assert KnowledgeBase.from_storage(url).names == ["done"]


WORKER = textwrap.dedent(
    """
    import sys, optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(sys.argv[1], engine_kwargs={"connect_args": {"timeout": 30}})
    study = optuna.create_study(storage=storage, study_name="worker", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=int(sys.argv[2]))
    """
)


def test_add_study_while_another_process_writes_the_same_storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    # SQLite serialises writers: wait up to 30 s for the lock instead of sqlite3's 5 s.
    storage = RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 30}})
    n_worker_trials = 20
    worker = subprocess.Popen([sys.executable, "-c", WORKER, url, str(n_worker_trials)], stderr=subprocess.PIPE)
    kb = KnowledgeBase.from_storage(storage)
    sources = []
    while worker.poll() is None or len(sources) < 3:
        sources.append(make_study(seed=len(sources)))
        kb.add_study(sources[-1])
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr.decode()
    reread = KnowledgeBase.from_storage(url)
    assert len(reread["worker"].completed_trials()) == n_worker_trials
    copies = [reread[task.name] for task in kb]
    assert copies == list(kb)
    assert [len(task.trials) for task in copies] == [len(source.trials) for source in sources]


def test_duplicate_task_names_are_refused():
    study = make_study()
    with pytest.raises(ValueError, match="already has a task"):
        KnowledgeBase.from_studies([study, study])
