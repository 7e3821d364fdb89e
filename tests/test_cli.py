"""The ``autometa`` command: real runs on small settings, errors without tracebacks."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autometa.apps.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "omniglot"
ZIPS = sorted(SHARED.glob("images_background_small*.zip"))
needs_omniglot = pytest.mark.skipif(not ZIPS, reason=f"Omniglot zips not found in {SHARED}")


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and "autometa" in capsys.readouterr().out
    for command in (["--help"], ["fewshot", "train", "--help"], ["bench", "--help"], ["rl2", "train", "--help"],
                    ["rl2", "eval", "--help"], ["rl2", "curve", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(command)
        assert exit_.value.code == 0


def test_user_errors_exit_2_without_traceback(tmp_path, capsys):
    assert main(["fewshot", "eval-lake", "--model", str(tmp_path / "none.pt"), "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autometa: error: no model file") and "Traceback" not in err
    assert main(["bench", "omniglot-load", "--data", str(tmp_path / "missing.zip")]) == 2
    capsys.readouterr()
    assert main(["fewshot", "train", "--algorithm", "maml", "--loss", "nca", "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autometa: error: --loss is ProtoNet's training loss") and not (tmp_path / "m.pt").exists()
    for extra, message in ((["--algorithm", "reptile", "--ensemble", "2"], "--ensemble is of ProtoNets"),
                           (["--steps", "1", "--ensemble", "2"], "--steps 1 cannot be shared by --ensemble 2")):
        assert main(["fewshot", "train", *extra, "--out", str(tmp_path / "m.pt")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"autometa: error: {message}") and not (tmp_path / "m.pt").exists()


def test_options_rejected_by_their_type_exit_2(capsys):
    for argv, option in ((["fewshot", "train", "--out", "m.pt", "--k-shot", "0"], "--k-shot"),
                         (["bench", "sinusoid", "--shots", "5,x"], "--shots"),
                         (["rl2", "eval", "--agent", "a.pt", "--seed", "-1"], "--seed")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and f"argument {option}: " in capsys.readouterr().err


def test_a_library_error_is_not_reported_as_a_user_error(monkeypatch):
    import autometa.apps.demo

    def broken(**kwargs):
        raise ValueError("a bug in the library")

    monkeypatch.setattr(autometa.apps.demo, "run", broken)
    with pytest.raises(ValueError, match="a bug in the library"):
        main(["demo"])


def test_help_imports_no_heavy_library():
    code = ("import sys\nfrom autometa.apps.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'optuna', 'sklearn', 'matplotlib') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip().endswith("[]"), result.stderr


def test_python_dash_m_runs_the_command():
    result = subprocess.run([sys.executable, "-m", "autometa", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("autometa ")


def test_bench_episodes_on_synthetic_data(capsys):
    assert main(["bench", "episodes", "--episodes", "64", "--n-way", "5", "--k-shot", "1", "--n-query", "2"]) == 0
    assert "EpisodeSampler:" in capsys.readouterr().out


@needs_omniglot
def test_train_then_eval_lake_on_held_out_alphabets(tmp_path, capsys):
    from autometa.meta import MetaLearner

    data = [arg for z in ZIPS for arg in ("--data", str(z))]
    runs, model = tmp_path / "runs", tmp_path / "protonet.pt"
    assert main(["fewshot", "make-lake-runs", *data, "--alphabets", "Korean", "--runs", "3", "--out", str(runs)]) == 0
    assert main(["fewshot", "train", *data, "--exclude-alphabets", "Korean,Japanese_(katakana)", "--steps", "3",
                 "--n-way", "10", "--device", "cpu", "--out", str(model), "--quiet", "--distortion", "shear",
                 "--loss", "nca"]) == 0
    assert model.exists() and "distortion: shear" in capsys.readouterr().out
    assert MetaLearner.load(model).loss == "nca"
    for options in ([], ["--scoring", "two-way", "--views", "3"], ["--fine-tune-steps", "2", "--fine-tune-lr", "1e-3"]):
        assert main(["fewshot", "eval-lake", "--model", str(model), "--runs", str(runs), "--device", "cpu",
                     *options]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines[0].startswith("pixel 1-NN baseline, mean error: ")
        assert len(lines) == 5 and lines[-1].startswith("mean error: ") and lines[-1].endswith("%")
    # an ensemble at another image size: saved as one ProtoNet, scored at its size
    assert main(["fewshot", "train", *data, "--exclude-alphabets", "Korean,Japanese_(katakana)", "--steps", "3",
                 "--n-way", "10", "--device", "cpu", "--out", str(model), "--quiet", "--ensemble", "2",
                 "--image-size", "20"]) == 0
    assert "steps: 3," in capsys.readouterr().out
    assert len(MetaLearner.load(model).backbone.branches) == 2
    assert main(["fewshot", "eval-lake", "--model", str(model), "--runs", str(runs), "--device", "cpu"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("mean error: ")


@needs_omniglot
def test_bench_lake_cv_trains_one_model_per_fold_then_reuses_them(tmp_path, capsys, monkeypatch):
    from autometa.meta import MetaLearner
    from benchmarks import lake_cv

    folds = lake_cv.FOLDS[:2]
    first = lake_cv.run(ZIPS, tmp_path, folds=folds, steps=2, views=[1])
    out = capsys.readouterr().out
    assert out.count("trained 2 steps") == 2 and "nearest, 1 view: mean error" in out
    errors = first["variants"]["nearest, 1 view"]["run_errors"]
    assert len(errors) == 40 and all(0 <= e <= 1 for e in errors)
    again = lake_cv.run(ZIPS, tmp_path, folds=folds, steps=2, scorings=["nearest", "two-way"], views=[1, 2])
    out = capsys.readouterr().out
    assert out.count("reused") == 2 and again["pixel_errors"] == first["pixel_errors"]
    assert list(again["variants"]) == ["nearest, 1 view", "nearest, 2 views", "two-way, 1 view", "two-way, 2 views"]
    assert again["variants"]["nearest, 1 view"]["run_errors"] == errors  # the same models, runs and scoring
    assert "two-way, 2 views: mean error" in out.split("over 2 folds")[1]
    tuned = lake_cv.run(ZIPS, tmp_path, folds=folds, steps=2, views=[1], fine_tune_steps=[0, 1])
    assert list(tuned["variants"]) == ["nearest, 1 view", "nearest, 1 view, fine-tuned 1 step"]
    assert tuned["variants"]["nearest, 1 view"]["run_errors"] == errors
    assert "fine-tuning rate 0.0001" in capsys.readouterr().out
    validated = lake_cv.run(ZIPS, tmp_path, folds=folds, steps=2, views=[1], score_on="validation")
    out = capsys.readouterr().out
    assert "scored on Sanskrit" in out and "scored on Japanese_(katakana)" in out and out.count("reused") == 2
    assert (tmp_path / "fold1" / "validation_runs" / "run20").is_dir()
    assert len(validated["variants"]["nearest, 1 view"]["run_errors"]) == 40
    assert json.loads((tmp_path / "validation_results.json").read_text())["scored_on"] == "validation"
    assert json.loads((tmp_path / "results.json").read_text())["scored_on"] == "test"  # kept apart
    with pytest.raises(ValueError, match="needs models trained with validation"):
        lake_cv.run(ZIPS, tmp_path, folds=folds, steps=2, validation=False, score_on="validation")
    lake_cv.run(ZIPS, tmp_path / "all", folds=folds[:1], steps=2, validation=False)
    out = capsys.readouterr().out
    assert "no validation, final model" in out and "shear distortions" in out  # ProtoNet's recipe
    lake_cv.run(ZIPS, tmp_path / "affine", folds=folds[:1], steps=2, views=[1], distortion="affine", loss="nca",
                precision="bfloat16")
    out = capsys.readouterr().out
    assert "affine distortions, nca loss, bfloat16 precision" in out and "s, bfloat16), validated" in out
    assert MetaLearner.load(tmp_path / "affine" / "fold1" / "model.pt").loss == "nca"
    # a training choice against another, run by run, through results.json
    lake_cv.run(ZIPS, tmp_path / "one", folds=folds[:1], steps=2, views=[1])
    plain = json.loads((tmp_path / "one" / "results.json").read_text())
    assert plain["training"] == {"budget": "2 steps", "validation": True, "distortion": "shear", "loss": "prototypes",
                                 "precision": "auto", "image_size": 28, "ensemble": 1}
    capsys.readouterr()
    compared = lake_cv.run(ZIPS, tmp_path / "affine", folds=folds[:1], steps=2, views=[1], against=tmp_path / "one")
    against = f"against {tmp_path / 'one'} (2 steps, shear distortions, prototypes loss, auto precision, 28x28 images)"
    out = capsys.readouterr().out.split(against)[1]
    difference = np.subtract(compared["variants"]["nearest, 1 view"]["run_errors"],
                             plain["variants"]["nearest, 1 view"]["run_errors"])
    assert f"nearest, 1 view: {100 * difference.mean():+.1f} +- " in out
    assert f"runs better/equal/worse {(difference < 0).sum()}/{(difference == 0).sum()}/{(difference > 0).sum()}" in out
    # another image size: trained and scored at it, compared on the same runs; a model of another size is refused
    larger = lake_cv.run(ZIPS, tmp_path / "larger", folds=folds[:1], steps=2, views=[1], image_size=32,
                         against=tmp_path / "one")
    out = capsys.readouterr().out
    assert "32x32 images, seed 0" in out and "28x28 images)" in out
    assert MetaLearner.load(tmp_path / "larger" / "fold1" / "model.pt").config["backbone"]["image_size"] == 32
    assert len(larger["variants"]["nearest, 1 view"]["run_errors"]) == 20
    assert json.loads((tmp_path / "larger" / "results.json").read_text())["training"]["image_size"] == 32
    with pytest.raises(ValueError, match="trained on 32x32 images, not 28x28; pass --image-size 32"):
        lake_cv.run(ZIPS, tmp_path / "larger", folds=folds[:1], steps=2, views=[1])
    ensemble = lake_cv.run(ZIPS, tmp_path / "pair", folds=folds[:1], steps=2, views=[1], ensemble=2,
                           against=tmp_path / "one")
    out = capsys.readouterr().out
    assert "an ensemble of 2 per fold" in out and "trained 2 steps" in out and "best step [" in out
    assert len(ensemble["variants"]["nearest, 1 view"]["run_errors"]) == 20
    assert json.loads((tmp_path / "pair" / "results.json").read_text())["training"]["ensemble"] == 2
    with pytest.raises(ValueError, match="is an ensemble of 2, not 1; pass --ensemble 2"):
        lake_cv.run(ZIPS, tmp_path / "pair", folds=folds[:1], steps=2, views=[1])
    for against, message in ((tmp_path / "none", "no results.json in"), (tmp_path, "was scored on other runs")):
        with pytest.raises(ValueError, match=message):
            lake_cv.run(ZIPS, tmp_path / "never", folds=folds[:1], steps=2, against=against)
    data = [arg for z in ZIPS for arg in ("--data", str(z))]
    assert main(["bench", "lake-cv", *data, "--out", str(tmp_path / "never"), "--against", str(tmp_path / "none")]) == 2
    assert "autometa: error: --against: no results.json in" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()  # checked before anything is trained or written
    (tmp_path / "one" / "results.json").write_text("{")
    with pytest.raises(ValueError, match="is not JSON"):
        lake_cv.run(ZIPS, tmp_path / "never", folds=folds[:1], steps=2, against=tmp_path / "one")
    with pytest.raises(ValueError, match="unknown alphabet 'Klingon'"):
        lake_cv.run(ZIPS, tmp_path / "other", folds=[("Korean", "Klingon")], steps=2)
    assert main(["bench", "lake-cv", "--out", str(tmp_path), "--scoring", "nearest,hungarian"]) == 2
    assert "--scoring: unknown scoring 'hungarian'" in capsys.readouterr().err
    calls = []
    monkeypatch.setattr(lake_cv, "run", lambda *args, **kwargs: calls.append(kwargs))
    assert main(["bench", "lake-cv", "--out", str(tmp_path), "--distortion", "affine", "--device", "cpu"]) in (None, 0)
    assert calls[0]["distortion"] == "affine" and calls[0]["loss"] == "prototypes"
    assert main(["bench", "lake-cv", "--out", str(tmp_path), "--loss", "nca", "--device", "cpu"]) in (None, 0)
    assert calls[1]["loss"] == "nca" and calls[1]["against"] is None and calls[1]["distortion"] == "shear"
    assert calls[1]["fine_tune_steps"] == [0] and calls[1]["fine_tune_lr"] == 1e-4
    assert calls[1]["precision"] == "auto"
    assert main(["bench", "lake-cv", "--out", str(tmp_path), "--fine-tune-steps", "0,20", "--fine-tune-lr", "3e-4",
                 "--device", "cpu"]) in (None, 0)
    assert calls[2]["fine_tune_steps"] == [0, 20] and calls[2]["fine_tune_lr"] == 3e-4
    assert calls[1]["score_on"] == "test"
    assert main(["bench", "lake-cv", "--out", str(tmp_path), "--score-on", "validation", "--device", "cpu"]) in (None, 0)
    assert calls[3]["score_on"] == "validation"
    assert main(["bench", "lake-cv", "--out", str(tmp_path), "--precision", "float32", "--device", "cpu"]) in (None, 0)
    assert calls[4]["precision"] == "float32" and calls[4]["image_size"] == 28
    assert main(["bench", "lake-cv", "--out", str(tmp_path), "--image-size", "42", "--device", "cpu"]) in (None, 0)
    assert calls[5]["image_size"] == 42 and calls[5]["ensemble"] == 1
    assert main(["bench", "lake-cv", "--out", str(tmp_path), "--ensemble", "3", "--device", "cpu"]) in (None, 0)
    assert calls[6]["ensemble"] == 3
    with pytest.raises(SystemExit):
        main(["bench", "lake-cv", "--out", str(tmp_path), "--fine-tune-steps", "-1"])
    assert "expected comma-separated non-negative integers, got '-1'" in capsys.readouterr().err


@needs_omniglot
def test_train_options_checked_against_the_data(tmp_path, capsys):
    data = [arg for z in ZIPS for arg in ("--data", str(z))]
    for extra, message in ((["--val-alphabets", "Klingon"], "--val-alphabets: unknown alphabet 'Klingon'"),
                           (["--exclude-alphabets", "Korean,Klingon"], "--exclude-alphabets: unknown alphabet"),
                           (["--k-shot", "16"], "--k-shot 16: an episode needs 21 images of a class")):
        assert main(["fewshot", "train", *data, "--out", str(tmp_path / "m.pt"), "--device", "cpu", *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"autometa: error: {message}") and "Traceback" not in err


@needs_omniglot
def test_train_steps_are_not_cut_by_the_default_time_budget(tmp_path, monkeypatch):
    from autometa.apps import omniglot_recipe

    budgets = []
    real_meta_train = omniglot_recipe.meta_train

    def meta_train(*args, **kwargs):  # what reaches the training loop, then one step of it
        budgets.append((kwargs["steps"], kwargs["time_budget"]))
        return real_meta_train(*args, **{**kwargs, "steps": 1, "time_budget": None})

    monkeypatch.setattr(omniglot_recipe, "meta_train", meta_train)
    data = [arg for z in ZIPS for arg in ("--data", str(z))]
    for extra in (["--steps", "5000"], [], ["--steps", "5000", "--time-budget", "60"]):
        assert main(["fewshot", "train", *data, "--out", str(tmp_path / "m.pt"), "--device", "cpu", "--quiet",
                     "--n-way", "5", *extra]) == 0
    assert budgets == [(5000, None), (None, 900.0), (5000, 60.0)]


def test_distributed_outside_torchrun_is_a_user_error(tmp_path, capsys, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    assert main(["fewshot", "train", "--distributed", "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert "torchrun" in err and "Traceback" not in err


@needs_omniglot
@pytest.mark.parametrize("algorithm, extra", [("fomaml", []), ("protonet", ["--meta-batch", "2"])])
def test_fewshot_train_distributed_on_two_processes(tmp_path, monkeypatch, algorithm, extra):
    from autometa.data import load_omniglot

    data = [arg for z in ZIPS for arg in ("--data", str(z))]
    monkeypatch.setenv("AUTOMETA_CACHE", str(tmp_path / "cache"))
    load_omniglot(ZIPS, rotations=True)  # the cache, built once here rather than by both ranks at once
    model = tmp_path / f"{algorithm}.pt"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "autometa", "fewshot", "train", "--distributed", *data, "--algorithm", algorithm, *extra,
               "--n-way", "5", "--steps", "2", "--device", "cpu", "--out", str(model), "--quiet"]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "AUTOMETA_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[:3000]
    assert result.stdout.count("saved ") == 1 and "2 processes" in result.stdout  # rank 0 alone reports and saves
    assert model.exists()


def test_commands_switch_on_torch_huge_pages_unless_the_user_chose(monkeypatch):
    import sys

    from autometa.apps.cli import use_huge_pages_for_torch

    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    use_huge_pages_for_torch()
    import os

    assert os.environ.get("THP_MEM_ALLOC_ENABLE") == ("1" if sys.platform.startswith("linux") else None)
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")
    use_huge_pages_for_torch()
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "0"


def test_no_subcommand_option_is_stored_as_extra():
    """``main`` keeps the unparsed words in ``args.extra``: an option stored there would be overwritten."""
    import argparse

    from autometa.apps.cli import build_parser

    def dests(parser):
        for action in parser._actions:
            yield parser.prog, action.dest
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from dests(sub)

    clashes = [prog for prog, dest in dests(build_parser()) if dest == "extra"]
    assert not clashes, clashes
