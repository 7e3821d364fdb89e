"""`kb build` on a Dask cluster through joblib's backend: 2 local worker processes."""

import joblib
import optuna
import pytest
from test_kb_build import write_pmlb

from autometa.hpo.build import build_knowledge_base
from autometa.hpo.knowledge_base import KnowledgeBase

distributed = pytest.importorskip("distributed", reason="the Dask backend needs dask[distributed] (test extra)")


def test_build_runs_on_a_local_dask_cluster_of_two_workers(tmp_path):
    data_dir = write_pmlb(tmp_path / "pmlb", {
        "alpha": ("classification", 90, 3), "beta": ("classification", 60, 4), "gamma": ("classification", 80, 2),
    })
    storage = f"sqlite:///{tmp_path / 'kb.db'}"
    optuna.storages.RDBStorage(storage)  # the schema once, before the workers
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client, joblib.parallel_config(backend="dask"):
        with distributed.get_task_stream(client) as tasks:
            build_knowledge_base("logistic_regression", data_dir, storage, n_trials=3, n_jobs=2, cv=2, quiet=True)
        worker_pids = set(client.run(lambda: __import__("os").getpid()).values())
    assert len(worker_pids) == 2
    assert len(tasks.data) >= 3, "the studies ran as Dask tasks"
    kb = KnowledgeBase.from_storage(storage)
    assert len(kb) == 3
    assert all(len(task.trials) == 3 and task.descriptor is not None for task in kb)
