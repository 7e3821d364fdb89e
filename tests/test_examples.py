"""Every script in examples/ runs end to end in its smoke mode."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OMNIGLOT = sorted((ROOT.parent / "shared" / "data" / "omniglot").glob("images_background_small*.zip"))


def _run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--smoke", *args],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_every_example_is_covered_here():
    covered = {"sklearn_pipeline_grid_search.py", "rl2_bandits.py", "build_knowledge_base.py", "fewshot_omniglot.py",
               "parallel_workers.py", "warm_started_study.py", "tune_any_model.py"}
    assert {p.name for p in (ROOT / "examples").glob("*.py")} == covered


def test_build_knowledge_base_example(tmp_path):
    out = _run("build_knowledge_base.py", "--storage", f"sqlite:///{tmp_path / 'kb.db'}")
    assert out.count("warm start from knn:") == 3 and "best:" in out


def test_parallel_workers_example(tmp_path):
    out = _run("parallel_workers.py", "--storage", f"sqlite:///{tmp_path / 'studies.db'}")
    assert "8 trials by 2 workers; 4 warm-started, all different: True" in out


def test_warm_started_study_example():
    out = _run("warm_started_study.py")
    assert "MetaLearnedSampler.from_pretrained" in out and "TPE" in out


def test_tune_any_model_example():
    out = _run("tune_any_model.py")
    assert "MetaSearchCV, 2 trials" in out and "GridSearchCV" in out
    assert "warm-started from the shipped 'hist_gradient_boosting' knowledge base: True" in out


def test_rl2_bandits_example():
    assert "RL2" in _run("rl2_bandits.py")


@pytest.mark.skipif(not OMNIGLOT, reason="Omniglot zips not found in ../shared/data/omniglot")
def test_fewshot_omniglot_example():
    data = [arg for path in OMNIGLOT for arg in ("--data", str(path))]
    assert "20-way 1-shot within unseen alphabets" in _run("fewshot_omniglot.py", *data)
