"""Worker processes share one study; one is killed mid-trial; nothing else is lost.

Four processes optimise one study with :class:`~autometa.MetaLearnedSampler`
on one storage (SQLite, and PostgreSQL when a server is reachable: see
``tests/_postgres.py``), with Optuna's heartbeat on. One worker is killed
with SIGKILL while its trial is RUNNING. The survivors' heartbeat check
(``optuna.storages.fail_stale_trials``, run before each trial) marks that
trial FAIL. Every trial a worker reports completed (it writes the number to
its own file, after the storage has it) is COMPLETE in the storage, and vice
versa; the knowledge base's studies in the same storage are not touched.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from _postgres import postgres_url, server  # noqa: F401  (postgres_url is a fixture)
from optuna.trial import TrialState

from autometa.hpo import KnowledgeBase

optuna.logging.set_verbosity(optuna.logging.WARNING)

N_WORKERS = 4
VICTIM = 0
#: The victim dies in its third trial (after two complete ones).
VICTIM_TRIAL_INDEX = 2
# A grace period of 2 s failed live trials on a loaded 2-core machine (a worker's
# heartbeat thread starved, or waiting on SQLite's lock): 5 s leaves a margin.
HEARTBEAT_INTERVAL, GRACE_PERIOD = 1, 5

# One interpreter imports optuna, torch and autometa once and forks the
# workers (before any thread or database connection exists): four cold
# imports would take most of the time budget on a small machine. Each worker
# is still its own process, with its own storage connection, killed alone.
WORKERS = textwrap.dedent(
    """
    import json, math, os, sys, time, traceback
    from pathlib import Path
    import optuna
    from optuna.trial import TrialState
    from autometa.hpo import KnowledgeBase, MetaLearnedSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def work(worker, url, study_name, out, victim_index, kb_names):
        def stale(study, trial):
            # Optuna calls this in the worker that found the stale trial and failed it
            (out / f"stale-{trial.number}-by-{worker}").write_text(trial.state.name)

        engine_kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}
        storage = optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=%(interval)d, grace_period=%(grace)d,
            heartbeat_stale_trial_callback=stale,
        )
        kb = KnowledgeBase.from_storage(storage, study_names=kb_names)
        sampler = MetaLearnedSampler(kb, n_warm_start=4, seed=worker, meta_train_steps=10, n_candidates=32)
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
        report = open(out / f"completed-{worker}", "a")
        started = []

        def objective(trial):
            started.append(trial.number)
            x = trial.suggest_float("x", -5.0, 5.0)
            lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
            kind = trial.suggest_categorical("kind", ["a", "b"])
            if len(started) - 1 == victim_index:
                (out / "victim-running").write_text(str(trial.number))
                time.sleep(600)  # killed here
            time.sleep(0.01)
            return (x - 1.0) ** 2 + math.log10(lr) ** 2 / 10 + (kind == "b")

        def record(study, trial):
            if trial.state == TrialState.COMPLETE:  # the storage has it: now report it
                report.write(f"{trial.number}\\n")
                report.flush()
                os.fsync(report.fileno())
            if (out / "stop").exists():
                study.stop()

        study.optimize(objective, callbacks=[record], timeout=90)

    url, study_name, n_workers, out, victim, victim_index, kb_names = sys.argv[1:8]
    out, kb_names = Path(out), json.loads(kb_names)
    workers = {}
    for w in range(int(n_workers)):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                work(w, url, study_name, out, int(victim_index) if w == int(victim) else -1, kb_names)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        workers[pid] = w
        (out / f"pid-{w}").write_text(str(pid))
    status = {}
    while workers:
        pid, code = os.wait()
        status[workers.pop(pid)] = -os.WTERMSIG(code) if os.WIFSIGNALED(code) else os.WEXITSTATUS(code)
    (out / "status.json").write_text(json.dumps(status))
    """
) % {"interval": HEARTBEAT_INTERVAL, "grace": GRACE_PERIOD}


def source_study(seed: int) -> optuna.Study:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    shift = 0.5 * seed

    def objective(trial):
        x = trial.suggest_float("x", -5.0, 5.0)
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        kind = trial.suggest_categorical("kind", ["a", "b"])
        return (x - shift) ** 2 + math.log10(lr) ** 2 / 10 + (kind == "b")

    study.optimize(objective, n_trials=15)
    return study


def snapshot(url: str, names: list[str]) -> dict:
    """Everything the storage holds about the knowledge base's studies."""
    kb = KnowledgeBase.from_storage(url, study_names=names)
    studies = {name: optuna.load_study(study_name=name, storage=url) for name in names}
    return {
        "tasks": [task.to_dict() for task in kb],
        "user_attrs": {name: study.user_attrs for name, study in studies.items()},
        "trials": {name: study.get_trials() for name, study in studies.items()},  # every field, datetimes too
    }


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the workers exited ({process.returncode}) while waiting for {what}: "
                                 f"{process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def run_workers_and_kill_one(url: str, out: Path):
    """Run the workers, kill the victim mid-trial, stop the rest once its trial has failed.

    Returns
    -------
    names : list of str
        The knowledge base's studies.
    before : dict
        Their snapshot before the workers ran.
    killed : int
        The number of the trial that was running when its worker was killed.
    status : dict of int to int
        Each worker's exit code (minus the signal that ended it).
    """
    # the knowledge base: earlier studies copied into the same storage
    kb = KnowledgeBase.from_storage(url, study_names=[])
    for seed in range(3):
        kb.add_study(source_study(seed))
    names = kb.names
    optuna.create_study(storage=url, study_name="target")
    before = snapshot(url, names)
    target = optuna.load_study(study_name="target", storage=url)

    def state(number):
        return target._storage.get_trial(target._storage.get_trial_id_from_study_id_trial_number(
            target._study_id, number)).state

    process = subprocess.Popen(
        [sys.executable, "-c", WORKERS, url, "target", str(N_WORKERS), str(out), str(VICTIM),
         str(VICTIM_TRIAL_INDEX), json.dumps(names)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        wait_for(lambda: (out / "victim-running").exists(), 60, "the victim's trial to start", process)
        killed = int((out / "victim-running").read_text())
        assert state(killed) == TrialState.RUNNING
        os.kill(int((out / f"pid-{VICTIM}").read_text()), signal.SIGKILL)
        # a survivor fails it once its heartbeat is GRACE_PERIOD old, before starting its next trial
        wait_for(lambda: state(killed) != TrialState.RUNNING, 30, "the killed trial to be failed", process)
        (out / "stop").write_text("")
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr[-3000:]  # the forking interpreter itself
    finally:
        if process.poll() is None:
            process.kill()  # the workers then see no parent; their optimize(timeout=90) ends them
            process.wait()
            (out / "stop").write_text("")
    status = {int(w): code for w, code in json.loads((out / "status.json").read_text()).items()}
    return names, before, killed, status, stderr


def storage_urls():
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres",
                     marks=pytest.mark.skipif(server()[0] is None, reason=server()[1] or "reachable")),
    ]


@pytest.mark.parametrize("backend", storage_urls())
def test_a_worker_killed_mid_trial_loses_nothing_else(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'study.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    out = tmp_path / "out"
    out.mkdir()
    names, before, killed, status, stderr = run_workers_and_kill_one(url, out)
    assert status == {w: -signal.SIGKILL if w == VICTIM else 0 for w in range(N_WORKERS)}, stderr[-3000:]

    trials = optuna.load_study(study_name="target", storage=url).trials
    states = {}
    for trial in trials:
        states.setdefault(trial.state, []).append(trial.number)
    # the killed trial, and only it, failed; none is left running
    assert trials[killed].state == TrialState.FAIL
    assert states.get(TrialState.FAIL) == [killed], states.get(TrialState.FAIL)
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    stale = sorted(p.name for p in out.glob("stale-*"))
    assert stale and all(name.startswith(f"stale-{killed}-by-") for name in stale), stale
    assert f"stale-{killed}-by-{VICTIM}" not in stale
    if backend == "postgres":
        # a row lock makes one worker the one that fails it; SQLite has no
        # SELECT ... FOR UPDATE, so two workers may both run the stale callback
        assert len(stale) == 1, stale

    # every reported completion is in the storage, and every COMPLETE trial was reported
    reported = []
    for w in range(N_WORKERS):
        reported += [int(line) for line in (out / f"completed-{w}").read_text().split()]
    assert len(reported) == len(set(reported)), "a trial was reported by two workers"
    assert sorted(reported) == states[TrialState.COMPLETE]
    victim_reported = (out / f"completed-{VICTIM}").read_text().split()
    assert len(victim_reported) == VICTIM_TRIAL_INDEX, "the victim's trials before the kill are kept"
    survivors_after = [n for n in reported if n > killed]
    assert survivors_after, "the survivors went on after the kill"

    # warm-start configurations are never tried twice, even with a worker killed
    sources = [(t.user_attrs["autometa:source_task"], t.user_attrs["autometa:source_trial"])
               for t in trials if t.user_attrs.get("autometa:warm_start")]
    assert len(sources) == len(set(sources)), sources

    # the knowledge base in the same storage is untouched
    assert snapshot(url, names) == before
