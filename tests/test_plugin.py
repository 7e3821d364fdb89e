"""The OptunaHub package in plugins/ loads through optunahub and warm-starts a study."""

from pathlib import Path

import optuna
import pytest

optunahub = pytest.importorskip("optunahub", reason="optunahub is in the test extra: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "plugins" / "samplers" / "meta_learned"


def _front_matter() -> dict[str, str]:
    text = (PACKAGE / "README.md").read_text()
    assert text.startswith("---\n")
    block = text.split("---\n")[1]
    return dict(line.split(": ", 1) for line in block.strip().splitlines())


def test_package_has_the_registry_files_and_front_matter():
    assert {"__init__.py", "README.md", "LICENSE", "example.py"} <= {p.name for p in PACKAGE.iterdir()}
    front = _front_matter()
    assert {"author", "title", "description", "tags", "optuna_versions", "license"} <= set(front)
    assert "sampler" in front["tags"].strip("[]").split(", ")


def test_loads_with_optunahub_and_warm_starts(monkeypatch):
    monkeypatch.chdir(ROOT)
    module = optunahub.load_local_module(package="samplers/meta_learned", registry_root="plugins")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    earlier = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    earlier.optimize(lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2, n_trials=20)
    sampler = module.MetaLearnedSampler(module.KnowledgeBase.from_studies([earlier]), n_warm_start=2,
                                        surrogate=None, seed=0)
    assert isinstance(sampler, optuna.samplers.BaseSampler)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2, n_trials=4)
    assert [t.user_attrs["autometa:warm_start"] for t in study.trials] == [True, True, False, False]
    assert study.trials[0].params["x"] == earlier.best_params["x"]


def test_example_runs(monkeypatch):
    monkeypatch.chdir(ROOT)
    namespace = {"__name__": "plugin_example"}
    exec(compile((PACKAGE / "example.py").read_text(), str(PACKAGE / "example.py"), "exec"), namespace)
    study = namespace["main"](n_trials=6)
    assert sum(t.user_attrs["autometa:warm_start"] for t in study.trials) == 3
