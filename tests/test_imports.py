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


# The library's layers, lowest first: a module may import its own layer and those below it.
LAYERS = {"_common": 0, "_lazy": 0, "data": 1, "tasks": 2, "nn": 2, "meta": 3, "rl": 3,
          "estimators": 4, "hpo": 4, "apps": 5}


def _imported_modules(path, package: str):
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                yield ".".join(base + ([node.module] if node.module else []))
            else:
                yield node.module


def test_data_flows_one_way_and_the_library_never_imports_benchmarks_or_apps():
    from pathlib import Path

    import autometa

    root = Path(autometa.__file__).parent
    against = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[0] in ("__init__", "__main__"):
            continue
        layer = parts[0]
        package = ".".join(("autometa", *parts[:-1]))
        for name in _imported_modules(path, package):
            top = name.split(".")
            if top[0] == "benchmarks" and layer != "apps":
                against.append(f"{path.relative_to(root)} imports {name}")
            if top[0] == "autometa" and len(top) > 1 and top[1] in LAYERS:
                other = top[1]
                if LAYERS[other] > LAYERS[layer] or (LAYERS[other] == LAYERS[layer] == 4 and other != layer):
                    against.append(f"{path.relative_to(root)} ({layer}) imports {name} ({other})")
    assert not against, "imports against the data flow:\n" + "\n".join(against)
