"""The greedy portfolio and MetaLearnedSampler: warm start, similarity, surrogate search, workers, determinism."""

import doctest
import json
import subprocess
import sys

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

import autometa.hpo.candidates
import autometa.hpo.encoding
import autometa.hpo.portfolio
import autometa.hpo.sampler
import autometa.hpo.similarity
import autometa.hpo.surrogate
from autometa.hpo import KnowledgeBase, MetaLearnedSampler
from autometa.hpo.knowledge_base import Task, TrialRecord
from autometa.hpo.portfolio import greedy_portfolio, greedy_portfolio_entries
from autometa.hpo.similarity import descriptor_weights, response_similarity

optuna.logging.set_verbosity(optuna.logging.WARNING)
X = FloatDistribution(0.0, 1.0)


def make_task(name, rows, direction="minimize", descriptor=None):
    """A task from (params, value) rows; distributions: x in [0, 1], other names categorical."""
    trials = []
    for number, (params, value) in enumerate(rows):
        distributions = {
            p: X if p in ("x", "y") else CategoricalDistribution(["a", "b", "c"]) for p in params
        }
        trials.append(TrialRecord(number, "COMPLETE", params, distributions, (float(value),)))
    return Task(name, (direction,), tuple(trials), descriptor)


def grid_task(name, values, direction="minimize"):
    return make_task(name, [({"x": x}, v) for x, v in zip((0.0, 0.5, 1.0), values)], direction)


# --- portfolio ---------------------------------------------------------------------------


def test_portfolio_minimises_mean_regret_and_respects_direction():
    # normalised: A (minimise) x=0 -> 0, 0.5 -> 0.5, 1 -> 1; B (maximise) x=0.5 -> 0, 1 -> 0.5, 0 -> 1
    a, b = grid_task("A", [0, 5, 10]), grid_task("B", [0, 10, 5], direction="maximize")
    # alone, x=0.5 has mean regret 0.25 (x=0: 0.5, x=1: 0.75); then x=0 makes it 0
    assert greedy_portfolio([a, b], k=2) == [{"x": 0.5}, {"x": 0.0}]
    entries = greedy_portfolio_entries([a, b], k=2)
    assert [e.expected_regret for e in entries] == pytest.approx([0.25, 0.0])
    assert [(e.task_name, e.trial_number) for e in entries] == [("A", 1), ("A", 0)]
    # weights: only A counts, so its own best comes first and B contributes no candidate
    assert greedy_portfolio([a, b], k=3, weights=[1, 0]) == [{"x": 0.0}, {"x": 0.5}, {"x": 1.0}]
    assert greedy_portfolio([a, b], k=0) == []
    assert len(greedy_portfolio([a, b], k=10)) == 3  # only three distinct configurations


def test_regret_on_other_tasks_uses_the_nearest_trial():
    source = make_task("source", [({"x": 0.42}, 0.0), ({"x": 0.9}, 1.0)])
    # the target's trial nearest to x=0.42 is x=0.5, normalised value 0.25
    target = make_task("target", [({"x": 0.0}, 1.0), ({"x": 0.5}, 0.25), ({"x": 1.0}, 0.0)])
    first = greedy_portfolio_entries([source, target], k=1, weights=[1, 1], n_candidates_per_task=1)[0]
    # candidates: source x=0.42 (regrets 0 and 0.25) vs target x=1 (source's nearest x=0.9: 1; target 0)
    assert first.params == {"x": 0.42}
    assert first.expected_regret == pytest.approx(0.125)


def test_categorical_mismatch_missing_and_unshared_params():
    source = make_task("source", [({"x": 0.5, "kind": "a"}, 0.0), ({"x": 0.0, "kind": "b"}, 1.0)])
    # same x, other kind (distance 1) vs other x by 0.2 and same kind (distance 0.2): the latter is nearest
    target = make_task("target", [({"x": 0.5, "kind": "b"}, 1.0), ({"x": 0.7, "kind": "a"}, 0.0), ({"x": 0.0}, 0.5)])
    first = greedy_portfolio_entries([source, target], k=1, n_candidates_per_task=1)[0]
    # were (0.5, "b") nearest, source's best would score 0.5 and target's best (0.7, "a") would win
    assert first.params == {"x": 0.5, "kind": "a"} and first.expected_regret == pytest.approx(0.0)
    # no shared parameter: every trial ties, so the regret is the target's mean normalised value
    other = make_task("other", [({"y": 0.1}, 0.0), ({"y": 0.2}, 2.0), ({"y": 0.3}, 4.0)])
    first = greedy_portfolio_entries([source, other], k=1, weights=[1e-9, 1], n_candidates_per_task=1)
    # other's own best (regret 0 on it) beats source's best (regret 0.5 = mean of 0, 0.5, 1 on it)
    assert first[0].params == {"y": 0.1}
    # equally weighted, each best scores 0 at home and 0.5 away: a tie, then both serve everything
    both = greedy_portfolio_entries([source, other], k=2, n_candidates_per_task=1)
    assert [e.task_name for e in both] == ["source", "other"]
    assert [e.expected_regret for e in both] == pytest.approx([0.25, 0.0])


def test_portfolio_validates_its_arguments():
    a = grid_task("A", [0, 1, 2])
    with pytest.raises(ValueError, match="weights"):
        greedy_portfolio([a], k=1, weights=[1, 2])
    with pytest.raises(ValueError, match="weights"):
        greedy_portfolio([a], k=1, weights=[-1])
    with pytest.raises(ValueError, match="k must"):
        greedy_portfolio([a], k=-1)
    two = Task("two", ("minimize", "minimize"), a.trials)
    with pytest.raises(ValueError, match="single-objective"):
        greedy_portfolio([two], k=1)
    assert greedy_portfolio([Task("empty", ("minimize",))], k=2) == []


# --- the sampler ---------------------------------------------------------------------------


def quadratic(optimum):
    def objective(trial):
        return (trial.suggest_float("x", -5, 5) - optimum[0]) ** 2 + (trial.suggest_float("y", -5, 5) - optimum[1]) ** 2

    return objective


def family_kb(n_tasks=5, n_trials=40):
    studies = []
    for i in range(n_tasks):
        study = optuna.create_study(study_name=f"task{i}", sampler=optuna.samplers.RandomSampler(seed=i))
        study.optimize(quadratic((1.0 + 0.1 * i, -2.0 + 0.1 * i)), n_trials=n_trials)
        studies.append(study)
    return KnowledgeBase.from_studies(studies)


def test_first_trials_are_the_portfolio_then_the_fallback_takes_over():
    kb = family_kb()
    sampler = MetaLearnedSampler(kb, n_warm_start=3, fallback=optuna.samplers.RandomSampler(seed=7), surrogate=None)
    assert sampler.portfolio == greedy_portfolio(list(kb), k=3)
    study = optuna.create_study(sampler=sampler)
    study.optimize(quadratic((1.2, -1.8)), n_trials=6)
    assert [t.params for t in study.trials[:3]] == sampler.portfolio
    assert [t.user_attrs["autometa:warm_start"] for t in study.trials] == [True] * 3 + [False] * 3
    assert all(t.user_attrs["autometa:source_task"] in kb.names for t in study.trials[:3])
    assert "autometa:source_task" not in study.trials[3].user_attrs
    source = kb[study.trials[0].user_attrs["autometa:source_task"]]
    assert source.trials[study.trials[0].user_attrs["autometa:source_trial"]].params == study.trials[0].params
    # the fallback was not consulted during the warm start: it continues as a fresh RandomSampler would
    plain = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    plain.optimize(quadratic((1.2, -1.8)), n_trials=3)
    assert [t.params for t in study.trials[3:]] == [t.params for t in plain.trials]


def test_unseen_conditional_and_out_of_range_params_go_to_the_fallback():
    kb = family_kb(n_tasks=2)
    sampler = MetaLearnedSampler(kb, n_warm_start=2, seed=0)

    def objective(trial):
        x = trial.suggest_float("x", -5, 5)
        y = trial.suggest_float("y", 0.0, 0.5)  # the portfolio's y values lie below 0
        depth = trial.suggest_int("depth", 1, 4)  # never seen
        if trial.suggest_categorical("kind", ["a", "b"]) == "a":  # conditional, never seen
            trial.suggest_float("lr", 1e-3, 1.0, log=True)
        return x**2 + y + depth

    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=4)
    for trial, config in zip(study.trials, sampler.portfolio):
        assert config["y"] < 0 <= trial.params["y"] <= 0.5
        assert trial.params["x"] == config["x"]
        assert 1 <= trial.params["depth"] <= 4 and trial.params["kind"] in ("a", "b")
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_parallel_workers_try_each_configuration_once():
    kb = family_kb()
    sampler = MetaLearnedSampler(kb, n_warm_start=4, seed=0, meta_train_steps=20)
    study = optuna.create_study(sampler=sampler)
    study.optimize(quadratic((1.2, -1.8)), n_trials=8, n_jobs=3)
    by_number = sorted(study.trials, key=lambda t: t.number)
    # fewer than three trials have completed when the first three start: the initial portfolio
    assert [t.params for t in by_number[:3]] == sampler.portfolio[:3]
    sources = [(t.user_attrs["autometa:source_task"], t.user_attrs["autometa:source_trial"]) for t in by_number[:4]]
    assert len(set(sources)) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in by_number)
    # enqueued values win over the portfolio
    study = optuna.create_study(sampler=MetaLearnedSampler(kb, n_warm_start=2, seed=0))
    study.enqueue_trial({"x": 4.0})
    study.optimize(quadratic((1.2, -1.8)), n_trials=1)
    assert study.trials[0].params["x"] == 4.0
    assert study.trials[0].params["y"] == sampler.portfolio[0]["y"]


def test_reseed_and_trial_hooks_reach_the_fallback():
    calls = []

    class Recording(optuna.samplers.RandomSampler):
        def reseed_rng(self):
            calls.append("reseed")
            super().reseed_rng()

        def before_trial(self, study, trial):
            calls.append("before")

        def after_trial(self, study, trial, state, values):
            calls.append("after")

    sampler = MetaLearnedSampler(family_kb(n_tasks=1), n_warm_start=1, fallback=Recording(seed=0), surrogate=None)
    sampler.reseed_rng()
    optuna.create_study(sampler=sampler).optimize(quadratic((0, 0)), n_trials=2)
    assert calls == ["reseed", "before", "after", "before", "after"]


def test_multi_objective_studies_use_the_fallback_with_a_warning():
    sampler = MetaLearnedSampler(family_kb(n_tasks=1), n_warm_start=2, fallback=optuna.samplers.RandomSampler(seed=0))
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    with pytest.warns(UserWarning, match="multi-objective"):
        study.optimize(lambda t: (t.suggest_float("x", -5, 5), t.suggest_float("y", -5, 5)), n_trials=3)
    assert not any(t.user_attrs["autometa:warm_start"] for t in study.trials)


def test_warm_start_beats_tpe_and_random_after_five_trials():
    kb = family_kb()
    target = quadratic((1.25, -1.75))  # a new task of the same family
    best = {"meta": [], "tpe": [], "random": []}
    for seed in range(3):
        samplers = {
            "meta": MetaLearnedSampler(kb, n_warm_start=5, seed=seed, surrogate=None),
            "tpe": optuna.samplers.TPESampler(seed=seed),
            "random": optuna.samplers.RandomSampler(seed=seed),
        }
        for name, sampler in samplers.items():
            study = optuna.create_study(sampler=sampler)
            study.optimize(target, n_trials=5)
            best[name].append(study.best_value)
    meta = np.mean(best["meta"])
    print({name: round(float(np.mean(values)), 3) for name, values in best.items()})
    assert meta < 0.2 * np.mean(best["tpe"]) and meta < 0.2 * np.mean(best["random"])


def test_descriptor_weighting_prefers_the_most_similar_task():
    descriptors = [{"log10_n_rows": 2.0}, {"log10_n_rows": 3.0}, {"log10_n_rows": 4.0}]
    optima = [(-4, -4), (0, 0), (4, 4)]
    tasks = []
    for i, (descriptor, optimum) in enumerate(zip(descriptors, optima)):
        study = optuna.create_study(study_name=f"t{i}", sampler=optuna.samplers.RandomSampler(seed=i))
        study.optimize(quadratic(optimum), n_trials=30)
        tasks.append(Task.from_study(study, descriptor))
    kb = KnowledgeBase(tasks)
    assert descriptor_weights(list(kb), {"log10_n_rows": 3.9}, n_similar=1).tolist() == [0, 0, 1]
    assert descriptor_weights(list(kb), {"log10_n_rows": 2.4}, n_similar=2).tolist() == [0.5, 0.5, 0]
    sampler = MetaLearnedSampler(kb, descriptor={"log10_n_rows": 3.9}, n_warm_start=1, n_similar=1)
    best_of_t2 = min(kb["t2"].completed_trials(), key=lambda t: t.value).params
    assert sampler.portfolio == [best_of_t2]
    with pytest.warns(UserWarning, match="equally"):
        weights = descriptor_weights(list(kb), {"n_classes": 3.0}, n_similar=1)
    assert weights.tolist() == pytest.approx([1 / 3] * 3)


def test_importing_autometa_hpo_does_not_import_optuna():
    code = (
        "import sys, autometa.hpo; print('optuna' in sys.modules); "
        "autometa.hpo.MetaLearnedSampler; print('optuna' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


@pytest.mark.parametrize(
    "module",
    [autometa.hpo.candidates, autometa.hpo.encoding, autometa.hpo.portfolio, autometa.hpo.sampler,
     autometa.hpo.similarity, autometa.hpo.surrogate],
)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --- similarity, the surrogate search, workers, determinism ----------------------------------


def spread_kb(optima=((-3.0, -3.0), (0.0, 3.0), (3.0, -1.0)), n_trials=40):
    """Tasks of the quadratic family with optima far apart."""
    studies = []
    for i, optimum in enumerate(optima):
        study = optuna.create_study(study_name=f"t{i}", sampler=optuna.samplers.RandomSampler(seed=i))
        study.optimize(quadratic(optimum), n_trials=n_trials)
        studies.append(study)
    return KnowledgeBase.from_studies(studies)


def test_a_study_of_task_i_finds_task_i_most_similar():
    kb = spread_kb()
    sampler = MetaLearnedSampler(kb, meta_train_steps=100, seed=0)
    data, model = sampler._task_data(), sampler._surrogate()
    for i, task in enumerate(kb):
        # the study's trials: configurations and values of source task i itself (values shifted and scaled)
        completed = [
            optuna.trial.create_trial(params=t.params, distributions=t.distributions, value=3.0 * t.value + 7.0)
            for t in task.completed_trials()[:8]
        ]
        # by nearest-neighbour surfaces (the warm start) and by the surrogate's task heads (its prior)
        by_neighbours = sampler._similarity(completed, optuna.study.StudyDirection.MINIMIZE)
        x = data.encoder.encode([t.params for t in completed])
        by_heads = response_similarity([t.value for t in completed], model.task_predictions(x))
        assert int(np.argmax(by_neighbours)) == i and by_neighbours[i] == pytest.approx(1.0)
        assert int(np.argmax(by_heads)) == i, by_heads


def test_similarity_reweights_the_rest_of_the_warm_start():
    kb = spread_kb()
    sampler = MetaLearnedSampler(kb, n_warm_start=5, n_similar=1, surrogate=None, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(quadratic((3.2, -1.2)), n_trials=5)  # a study of t2's neighbourhood
    sources = [t.user_attrs["autometa:source_task"] for t in study.trials]
    assert [t.params for t in study.trials[:3]] == sampler.portfolio[:3]
    assert sources[3:] == ["t2", "t2"]
    pairs = [(t.user_attrs["autometa:source_task"], t.user_attrs["autometa:source_trial"]) for t in study.trials]
    assert len(set(pairs)) == 5


def mixed_family(optimum, kind):
    """A shifted quadratic in three floats (one on a log scale) and a categorical."""

    def objective(trial):
        x = trial.suggest_float("x", -5, 5)
        y = trial.suggest_float("y", -5, 5)
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        k = trial.suggest_categorical("kind", ["a", "b", "c"])
        return (x - optimum[0]) ** 2 + (y - optimum[1]) ** 2 + (np.log10(lr) - optimum[2]) ** 2 + (k != kind)

    return objective


def test_surrogate_search_beats_tpe_after_15_trials_on_a_family_of_shifted_quadratics():
    studies = []
    for i in range(6):
        study = optuna.create_study(study_name=f"task{i}", sampler=optuna.samplers.RandomSampler(seed=i))
        study.optimize(mixed_family((0.2 * i - 0.5, 1.0 - 0.2 * i, -2.0 - 0.1 * i), "ab"[i % 2]), n_trials=40)
        studies.append(study)
    kb = KnowledgeBase.from_studies(studies)
    target = mixed_family((0.1, 0.4, -2.2), "a")  # optimum value 0
    best = {"meta": [], "tpe": []}
    for seed in range(3):
        for name, sampler in {
            "meta": MetaLearnedSampler(kb, seed=seed, meta_train_steps=100),
            "tpe": optuna.samplers.TPESampler(seed=seed),
        }.items():
            study = optuna.create_study(sampler=sampler)
            study.optimize(target, n_trials=15)
            best[name].append(study.best_value)
            if name == "meta":  # trials after the warm start came from the surrogate, not the fallback
                assert not any(t.user_attrs["autometa:warm_start"] for t in study.trials[5:])
    print({name: round(float(np.mean(values)), 3) for name, values in best.items()})
    assert np.mean(best["meta"]) < 0.75 * np.mean(best["tpe"])


def _closest_pair(trials):
    points = np.array([[t.params["x"], t.params["y"]] for t in trials])
    distances = np.abs(points[:, None] - points[None]).max(-1) + np.eye(len(points)) * 99
    return distances.min()


def test_the_surrogate_does_not_re_measure_a_trial_within_the_noise_of_its_fold_scores():
    kb = family_kb()
    target = quadratic((1.2, -1.8))
    closest = {}
    for noisy in (False, True):
        def objective(trial):
            value = target(trial)
            if noisy:  # three folds, spread 2: the standard error of the mean is 1.15
                trial.set_user_attr(autometa.hpo.encoding.FOLD_SCORES_KEY, [value - 2.0, value, value + 2.0])
            return value

        sampler = MetaLearnedSampler(kb, n_warm_start=3, meta_train_steps=50, seed=0, patience=None)
        study = optuna.create_study(sampler=sampler)
        study.optimize(objective, n_trials=20)
        closest[noisy] = _closest_pair(study.trials[3:])
    # without noise the search refines around the best; with it, no proposal repeats a trial within its noise
    assert closest[True] > 3 * closest[False]


def test_the_surrogate_never_proposes_a_configuration_twice_while_untried_ones_remain():
    studies = []
    choices = {"a": ["p", "q", "r"], "b": ["u", "v"]}
    for i in range(3):
        study = optuna.create_study(study_name=f"cat{i}", sampler=optuna.samplers.RandomSampler(seed=i))
        study.optimize(lambda t: ("pqr".index(t.suggest_categorical("a", choices["a"])) - i) ** 2
                       + (t.suggest_categorical("b", choices["b"]) == "u"), n_trials=12)
        studies.append(study)
    sampler = MetaLearnedSampler(KnowledgeBase.from_studies(studies), n_warm_start=1, meta_train_steps=20, seed=0,
                                 patience=None)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: ("pqr".index(t.suggest_categorical("a", choices["a"])) - 1) ** 2
                   + (t.suggest_categorical("b", choices["b"]) == "v"), n_trials=6)
    assert len({(t.params["a"], t.params["b"]) for t in study.trials}) == 6  # all six configurations


def test_surrogate_search_samples_the_relative_space_and_leaves_the_rest_to_the_fallback():
    kb = family_kb(n_tasks=3)
    calls = []

    class Recording(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, distribution):
            calls.append((trial.number, name))
            return super().sample_independent(study, trial, name, distribution)

    sampler = MetaLearnedSampler(kb, n_warm_start=2, fallback=Recording(seed=0), meta_train_steps=20, seed=0)

    def objective(trial):
        x = trial.suggest_float("x", -5, 5)
        y = trial.suggest_float("y", -5, 5)
        depth = trial.suggest_int("depth", 1, 4)  # never seen: the fallback's
        return x**2 + y**2 + depth

    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=6)
    later = {name for number, name in calls if number >= 2}
    assert later == {"depth"}  # x and y came from the surrogate
    assert all(-5 <= t.params["x"] <= 5 and 1 <= t.params["depth"] <= 4 for t in study.trials)


def test_conditional_define_by_run_spaces_work():
    def objective(trial):
        kind = trial.suggest_categorical("kind", ["a", "b"])
        if kind == "a":
            value = (np.log10(trial.suggest_float("lr", 1e-4, 1.0, log=True)) + 2) ** 2
        else:
            value = 1 + (trial.suggest_int("depth", 1, 8, step=1) - 3) ** 2 / 10
        return value + trial.suggest_float("x", -1, 1, step=0.25) ** 2

    studies = []
    for i in range(3):
        study = optuna.create_study(study_name=f"c{i}", sampler=optuna.samplers.RandomSampler(seed=i))
        study.optimize(objective, n_trials=25)
        studies.append(study)
    sampler = MetaLearnedSampler(KnowledgeBase.from_studies(studies), n_warm_start=3, meta_train_steps=30, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=15)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    for t in study.trials:
        assert ("lr" in t.params) == (t.params["kind"] == "a") and ("depth" in t.params) == (t.params["kind"] == "b")
        assert t.params["x"] in np.arange(-1, 1.01, 0.25)
    assert study.best_value < 0.3


def test_same_seed_same_suggestions_and_reseed_changes_them():
    kb = family_kb(n_tasks=3)

    def run(reseed=False):
        sampler = MetaLearnedSampler(kb, n_warm_start=2, seed=3, meta_train_steps=30)
        if reseed:
            sampler.reseed_rng()
        study = optuna.create_study(sampler=sampler)
        study.optimize(quadratic((1.2, -1.8)), n_trials=8)
        return [t.params for t in study.trials]

    first = run()
    assert first == run()
    assert run(reseed=True)[2:] != first[2:]


def test_invalid_arguments_are_rejected_with_clear_errors():
    kb = family_kb(n_tasks=1)
    with pytest.raises(ValueError, match="surrogate must be one of"):
        MetaLearnedSampler(kb, surrogate="gp")
    with pytest.raises(ValueError, match="n_candidates must be a positive int"):
        MetaLearnedSampler(kb, n_candidates=0)
    with pytest.raises(ValueError, match="meta_train_steps must be a positive int"):
        MetaLearnedSampler(kb, meta_train_steps=-1)
    with pytest.raises(ValueError, match="n_warm_start"):
        MetaLearnedSampler(kb, n_warm_start=-1)
    for patience in (0, 2.5, "10"):
        with pytest.raises(ValueError, match="patience must be a positive integer or None"):
            MetaLearnedSampler(kb, patience=patience)


class _Recording(optuna.samplers.RandomSampler):
    """A fallback that records the trials it sampled a parameter for."""

    def __init__(self, seed):
        super().__init__(seed=seed)
        self.trials = set()

    def sample_independent(self, study, trial, name, distribution):
        self.trials.add(trial.number)
        return super().sample_independent(study, trial, name, distribution)


@pytest.mark.parametrize("improving", [False, True])
def test_a_stalled_surrogate_hands_trials_to_the_fallback_until_the_best_improves(improving):
    fallback = _Recording(seed=0)
    sampler = MetaLearnedSampler(family_kb(), n_warm_start=2, fallback=fallback, patience=3, meta_train_steps=20,
                                 seed=0)
    study = optuna.create_study(sampler=sampler)
    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        return -trial.number - x if improving else 1.0  # stalled: every trial ties the first

    study.optimize(objective, n_trials=9)
    # the surrogate proposes while at most 2 + 3 trials have completed (trials 2 to 5); then trial 0's best is stale
    assert fallback.trials & set(range(2, 9)) == (set() if improving else {6, 7, 8})
    # a trial that improves on the best gives the search back to the surrogate
    if not improving:
        study.enqueue_trial({"x": 0.5})
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1) - 1.0, n_trials=1)
        fallback.trials.clear()
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
        assert fallback.trials == set()


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_completed_trials_are_kept_up_to_date_as_a_full_recount_gives_them(direction):
    from autometa.hpo.encoding import finite_trials

    sampler = MetaLearnedSampler(family_kb(), n_warm_start=0, surrogate=None, seed=0)
    studies = [optuna.create_study(direction=direction, sampler=sampler) for _ in range(2)]

    def check(study):
        expected = finite_trials(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
        completed, best = sampler._completed_trials(study)
        assert [t.number for t in completed] == [t.number for t in expected]
        values = np.array([t.value for t in expected])
        assert best == (int(np.argmin(values if direction == "minimize" else -values)) if len(values) else -1)

    values = iter([3.0, float("inf"), 1.0, 1.0, -float("inf"), 2.0, 0.5, 5.0, 0.5])
    for step in range(9):
        study = studies[step % 2]  # two studies in turn: each call sees the other's memo
        check(study)
        first, second = study.ask(), study.ask()
        study.tell(second, next(values))  # completed out of order
        check(study)
        study.tell(first, 4.0 if step % 3 else None, state=None if step % 3 else optuna.trial.TrialState.FAIL)
        check(study)


_WORKER = """
import json, sys
import optuna
from autometa.hpo import KnowledgeBase, MetaLearnedSampler
optuna.logging.set_verbosity(optuna.logging.WARNING)
url, kb_path, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
sampler = MetaLearnedSampler(KnowledgeBase.load(kb_path), n_warm_start=4, seed=worker, meta_train_steps=5)
study = optuna.load_study(study_name="shared", storage=storage, sampler=sampler)
done = []
def objective(trial):
    value = (trial.suggest_float("x", -5, 5) - 1.2) ** 2 + (trial.suggest_float("y", -5, 5) + 1.8) ** 2
    done.append(trial.number)
    return value
study.optimize(objective, n_trials=6)
print(json.dumps(done))
"""


def test_two_worker_processes_share_one_sqlite_study(tmp_path):
    kb_path = tmp_path / "kb.json"
    family_kb(n_tasks=3, n_trials=20).save(kb_path)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="shared", storage=url)
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    workers = [
        subprocess.Popen([sys.executable, str(script), url, str(kb_path), str(i)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    reported = []
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err
        reported += json.loads(out.strip().splitlines()[-1])
    trials = optuna.load_study(study_name="shared", storage=url).trials
    assert len(trials) == len(reported) == 12
    assert sorted(reported) == sorted(t.number for t in trials)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    warm = [t for t in trials if t.user_attrs["autometa:warm_start"]]
    assert sorted(t.number for t in warm) == [0, 1, 2, 3]
    pairs = {(t.user_attrs["autometa:source_task"], t.user_attrs["autometa:source_trial"]) for t in warm}
    configs = {tuple(sorted(t.params.items())) for t in warm}
    assert len(pairs) == len(configs) == 4


def test_from_pretrained_warm_starts_from_the_shipped_knowledge_base():
    from sklearn.datasets import load_breast_cancer

    from autometa.hpo import load_pretrained, make_objective

    X, y = load_breast_cancer(return_X_y=True)
    sampler = MetaLearnedSampler.from_pretrained("logistic_regression", X, y, n_warm_start=2, surrogate=None, seed=0)
    known = {tuple(sorted(t.params.items())) for task in load_pretrained("logistic_regression") for t in task.trials}
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(make_objective("logistic_regression", X[:200], y[:200], cv=2), n_trials=2)
    assert all(tuple(sorted(t.params.items())) in known for t in study.trials)
    assert all(t.user_attrs["autometa:warm_start"] for t in study.trials)
    with pytest.raises(ValueError, match="logistic_regression"):
        MetaLearnedSampler.from_pretrained("no_such_space", X, y)
