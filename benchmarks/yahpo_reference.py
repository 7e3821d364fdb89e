"""Write the yahpo-gym reference outputs that ``tests/test_yahpo.py`` checks autometa against.

:class:`autometa.data.yahpo.YahpoScenario` re-implements how yahpo-gym turns
a configuration into the surrogate's input tensors. To check it, this script
evaluates random configurations with yahpo-gym itself and writes them, with
the surrogate's outputs, to ``tests/data/yahpo_reference/<scenario>.csv``
(one row per configuration: the instance, every hyperparameter, empty where
inactive, then every metric) plus ``meta.json`` (versions, seed, commands).

It runs *outside* autometa's environment and imports nothing from autometa:
yahpo-gym 1.0.1 pins ``numpy<2`` and ``ConfigSpace<=0.6.1``. The fixture in
the repository was made with exactly these commands, from the repository root::

    python -m venv /tmp/yahpo-venv
    /tmp/yahpo-venv/bin/pip install yahpo-gym==1.0.1 "numpy<2" "ConfigSpace<=0.6.1" onnxruntime pandas
    /tmp/yahpo-venv/bin/python benchmarks/yahpo_reference.py \\
        --data ../shared/data/yahpo --out tests/data/yahpo_reference

Half of the rows fix the fidelity parameters at their maximum (what the
benchmark evaluates), half keep the randomly sampled fidelity, so the
encoding of every input column is checked.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
from importlib import metadata
from pathlib import Path

#: The scenarios, their instances in the fixture, and how many configurations.
SCENARIOS = {
    "lcbench": {"instances": ["167168", "189873", "189906"], "n_configs": 300},
    "rbv2_xgboost": {"instances": ["12", "1501", "16", "40499"], "n_configs": 300},
}
SEED = 20240611


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_reference(data: Path, out: Path, seed: int = SEED) -> None:
    """Evaluate random configurations with yahpo-gym and write the fixture files."""
    import numpy as np
    from yahpo_gym import BenchmarkSet, local_config

    # A throwaway settings file: leave the user's ~/.config/yahpo_gym alone.
    local_config.settings_path = Path(tempfile.mkdtemp()) / "yahpo_gym"
    local_config.init_config(data_path=str(data))
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index, (scenario, spec) in enumerate(SCENARIOS.items()):
        bench = BenchmarkSet(scenario, multithread=False, check=True)
        space = bench.config_space
        space.seed(seed + index)
        instance_name = bench.config.instance_names
        fidelity = {name: space.get_hyperparameter(name).upper for name in bench.config.fidelity_params}
        configs = []
        for i in range(spec["n_configs"]):
            config = space.sample_configuration().get_dictionary()
            config[instance_name] = spec["instances"][int(rng.integers(len(spec["instances"])))]
            if i % 2 == 0:
                config.update(fidelity)
            configs.append(config)
        results = bench.objective_function(configs)
        columns = [instance_name] + [n for n in space.get_hyperparameter_names() if n != instance_name]
        with open(out / f"{scenario}.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(columns + list(bench.config.y_names))
            for config, result in zip(configs, results):
                row = [_format(config.get(name)) for name in columns]
                writer.writerow(row + [repr(float(result[y])) for y in bench.config.y_names])
    meta = {
        "made_by": "benchmarks/yahpo_reference.py",
        "seed": seed,
        "scenarios": SCENARIOS,
        "versions": {
            "python": platform.python_version(),
            **{name: metadata.version(name) for name in ("yahpo-gym", "numpy", "ConfigSpace", "onnxruntime")},
        },
        "data_version": (data / "VERSION").read_text().strip() if (data / "VERSION").is_file() else None,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the yahpo data folder (holds lcbench/, ...)")
    parser.add_argument("--out", type=Path, default=Path("tests/data/yahpo_reference"))
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    write_reference(args.data.resolve(), args.out, args.seed)


if __name__ == "__main__":
    main()
