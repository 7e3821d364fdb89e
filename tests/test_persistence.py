"""Saving and loading learners: plain data only, atomic, clear errors."""

import os
import pickle
import subprocess
import sys

import pytest
import torch

from autometa.meta import MAML, MetaLearner, ProtoNet, Reptile
from autometa._common import atomic_torch_save
from autometa.meta.base import FORMAT
from autometa.nn import MLP


def _learner():
    torch.manual_seed(0)
    return MAML({"name": "mlp", "in_features": 4, "out_features": 3, "hidden": [8]}, inner_lr=0.2, inner_steps=2)


def test_roundtrip_keeps_config_and_weights(tmp_path):
    learner = _learner()
    learner.save(tmp_path / "m.pt")
    loaded = MetaLearner.load(tmp_path / "m.pt")
    assert isinstance(loaded, MAML) and loaded.inner_steps == 2 and loaded.inner_lr == 0.2
    for (k, v), (k2, v2) in zip(learner.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    with pytest.raises(ValueError, match="holds a MAML, not a ProtoNet"):
        ProtoNet.load(tmp_path / "m.pt")


def test_custom_backbone_needs_the_module_at_load(tmp_path):
    learner = Reptile(MLP(4, 3, (8,)))
    learner.save(tmp_path / "r.pt")
    with pytest.raises(ValueError, match="custom backbone"):
        MetaLearner.load(tmp_path / "r.pt")
    loaded = Reptile.load(tmp_path / "r.pt", backbone=MLP(4, 3, (8,)))
    x = torch.randn(2, 4)
    torch.testing.assert_close(loaded.backbone(x), learner.backbone(x))
    with pytest.raises(ValueError, match="do not fit the architecture"):
        Reptile.load(tmp_path / "r.pt", backbone=MLP(4, 3, (16,)))


def test_missing_truncated_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file"):
        MetaLearner.load(tmp_path / "absent.pt")
    _learner().save(tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable autometa model file"):
        MetaLearner.load(tmp_path / "cut.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not an autometa model file"):
        MetaLearner.load(tmp_path / "foreign.pt")
    torch.save({"format": FORMAT, "version": 999}, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="format version 999"):
        MetaLearner.load(tmp_path / "future.pt")


class _RunsCode:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_a_file_crafted_to_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"format": FORMAT, "version": 1, "payload": _RunsCode(marker)}, f, protocol=2)
    with pytest.raises(ValueError, match="not a readable autometa model file"):
        MetaLearner.load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_a_crash_mid_save_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / "m.pt"
    _learner().save(path)
    before = path.read_bytes()
    # a child process that dies (SIGKILL-like: os._exit) in the middle of writing
    script = f"""
import os, torch
import autometa._common as base
real_save = torch.save
def dying_save(obj, f):
    f.write(b"partial bytes")
    f.flush()
    os._exit(9)
torch.save = dying_save
base.atomic_torch_save({{"x": torch.zeros(3)}}, {str(path)!r})
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert result.returncode == 9
    assert path.read_bytes() == before
    MetaLearner.load(path)


def test_atomic_save_removes_its_temporary_file_on_error(tmp_path):
    with pytest.raises(Exception):
        atomic_torch_save({"f": lambda: 0}, tmp_path / "x.pt")  # a lambda cannot be pickled
    assert list(tmp_path.iterdir()) == []


def test_pretrained_names_are_checked():
    from autometa.meta import available_pretrained, pretrained_path

    with pytest.raises(ValueError, match="no pretrained few-shot learner named 'klingon'; available: "):
        MetaLearner.load("pretrained:klingon")
    for name in available_pretrained():
        assert pretrained_path(f"pretrained:{name}") == pretrained_path(name) and pretrained_path(name).is_file()
