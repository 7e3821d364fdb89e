"""KnowledgeBase on a PostgreSQL storage: what goes in comes out as from memory.

Needs a server: ``$AUTOMETA_TEST_POSTGRES_URL`` (``.ci/run`` starts one with
``.ci/postgres.sh``); without one these tests skip, saying how to get one.
Each test gets its own database (the ``postgres_url`` fixture).
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import optuna
import pytest
from _postgres import postgres_url, requires_postgres  # noqa: F401  (postgres_url is a fixture)

from autometa.hpo import METAFEATURES, KnowledgeBase
from autometa.hpo.knowledge_base import DESCRIPTOR_KEY, Task

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = requires_postgres


def objective(trial):
    """Every trial state, every distribution kind, and values Postgres stores specially (inf, tiny)."""
    x = trial.suggest_float("x", -2.0, 2.0)
    lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
    depth = trial.suggest_int("depth", 1, 9, step=2)
    kind = trial.suggest_categorical("kind", ["a", None, 3, True, 2.5])
    if trial.number == 1:
        return math.nan  # FAIL
    if trial.number == 2:
        raise optuna.TrialPruned()
    if trial.number == 3:
        return math.inf
    if trial.number == 4:
        return -1e-300
    return x**2 + lr + depth + (kind is None)


def make_study(seed, storage=None, name=None, n_trials=10):
    study = optuna.create_study(storage=storage, study_name=name, sampler=optuna.samplers.RandomSampler(seed=seed))
    study.set_user_attr("dataset", f"set-{seed}")
    study.optimize(objective, n_trials=n_trials)
    return study


def descriptor(seed):
    values = {name: float(seed) + i / 7 for i, name in enumerate(METAFEATURES)}
    values["target_skewness"] = math.nan
    values[next(iter(METAFEATURES))] = math.inf
    return values


def without_name(task: Task) -> dict:
    data = task.to_dict()
    del data["name"]
    return data


def test_add_study_round_trip_equals_the_in_memory_knowledge_base(postgres_url):
    sources = [make_study(seed) for seed in range(3)]
    in_memory = KnowledgeBase()
    on_postgres = KnowledgeBase.from_storage(postgres_url)
    for seed, study in enumerate(sources):
        in_memory.add_study(study, descriptor=descriptor(seed))
        added = on_postgres.add_study(study, descriptor=descriptor(seed))
        assert added.name.startswith(f"{study.study_name}-")
    reread = KnowledgeBase.from_storage(postgres_url)
    assert sorted(reread.names) == sorted(on_postgres.names)
    assert [without_name(reread[name]) for name in on_postgres.names] == [without_name(t) for t in in_memory]
    task = reread[on_postgres.names[0]]
    assert [t.state for t in task.trials][:5] == ["COMPLETE", "FAIL", "PRUNED", "COMPLETE", "COMPLETE"]
    assert task.trials[3].values == (math.inf,) and task.trials[4].values == (-1e-300,)
    assert math.isnan(task.descriptor["target_skewness"])
    assert {type(t.params["kind"]) for t in task.trials} <= {str, type(None), int, bool, float}
    assert [t.params for t in task.trials] == [t.params for t in sources[0].trials if t.state.is_finished()]
    # the source study's user attrs travel with the copy
    copied = optuna.load_study(study_name=on_postgres.names[0], storage=postgres_url)
    assert copied.user_attrs["dataset"] == "set-0"


def test_from_storage_reads_studies_written_directly_on_postgres(postgres_url):
    studies = [make_study(seed, postgres_url, f"task-{seed}") for seed in range(2)]
    KnowledgeBase.describe_study(studies[1], [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]], [0, 1, 0, 1])
    optuna.create_study(storage=postgres_url, study_name="copying").set_user_attr("autometa:copy_complete", False)
    kb = KnowledgeBase.from_storage(postgres_url)
    assert sorted(kb.names) == ["task-0", "task-1"], "a half-copied study is skipped"
    assert kb["task-0"] == Task.from_study(studies[0])
    assert kb["task-1"].descriptor is not None and kb["task-0"].descriptor is None
    stored = optuna.load_study(study_name="task-1", storage=postgres_url).user_attrs[DESCRIPTOR_KEY]
    assert stored.keys() == kb["task-1"].descriptor.keys()
    assert KnowledgeBase.from_storage(postgres_url, study_names=["task-1"]).names == ["task-1"]
    with pytest.raises(KeyError, match="no study named 'nope'"):
        KnowledgeBase.from_storage(postgres_url, study_names=["nope"])


ADDER = textwrap.dedent(
    """
    import sys, optuna
    from autometa.hpo import KnowledgeBase
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kb = KnowledgeBase.from_storage(sys.argv[1], study_names=[])
    for i in range(int(sys.argv[3])):
        study = optuna.create_study(study_name=f"{sys.argv[2]}", sampler=optuna.samplers.RandomSampler(seed=i))
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=5)
        kb.add_study(study)
    print(" ".join(kb.names))
    """
)


def test_processes_adding_the_same_study_name_concurrently_never_collide(postgres_url):
    n_processes, n_each = 2, 3
    # Optuna creates its schema on first use, and two processes doing it at once on
    # an empty database collide (CREATE TYPE); set the storage up once, as a
    # deployment does before starting its workers.
    optuna.storages.RDBStorage(postgres_url)
    processes = [
        subprocess.Popen([sys.executable, "-c", ADDER, postgres_url, "same-name", str(n_each)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(n_processes)
    ]
    names = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err[-2000:]
        names += out.split()
    assert len(names) == len(set(names)) == n_processes * n_each
    kb = KnowledgeBase.from_storage(postgres_url)
    assert sorted(kb.names) == sorted(names)
    assert all(len(task.completed_trials()) == 5 for task in kb)
