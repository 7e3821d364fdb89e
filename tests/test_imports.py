"""Import costs and boundaries: ``import autometa`` is cheap, ``autometa.meta`` needs no Optuna."""

import subprocess
import sys
import time


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_autometa_is_fast_and_light():
    start = time.perf_counter()
    result = _run("import sys, autometa; print(sorted(m for m in ('optuna', 'matplotlib', 'torch') if m in sys.modules))")
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert elapsed < 2.0


def test_meta_data_and_tasks_import_without_optuna():
    # a finder that refuses optuna, as on a GPU machine without it
    code = """
import sys
class NoOptuna:
    def find_spec(self, name, path=None, target=None):
        if name == "optuna" or name.startswith("optuna."):
            raise ImportError("optuna is not installed here")
sys.meta_path.insert(0, NoOptuna())
import autometa.meta, autometa.data, autometa.tasks, autometa.nn, autometa.apps.omniglot_recipe
print("ok")
"""
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_unknown_top_level_name_is_an_attribute_error():
    result = _run("import autometa; autometa.NoSuchThing")
    assert result.returncode != 0 and "has no attribute 'NoSuchThing'" in result.stderr
