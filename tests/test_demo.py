"""The demo runs end to end (quick sizes): tables for both halves, three plots."""

from autometa.apps import demo


def test_demo_prints_its_tables_and_writes_its_plots(tmp_path, capsys):
    result = demo.run(out=tmp_path, seed=0, quick=True, verbose=False)
    out = capsys.readouterr().out
    for heading in ("[1] few-shot classification", "[2] MAML on sinusoids", "[3] tuning StandardScaler + RBF SVC"):
        assert heading in out
    assert [p.name for p in result["plots"]] == ["fewshot.png", "adaptation.png", "hpo.png"]
    assert all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in result["plots"])
    curves = result["hpo"]["curves"]
    assert set(curves) == {"TPE", "MetaLearnedSampler.from_pretrained"}
    assert all(len(c) == 6 and all(a <= b for a, b in zip(c, c[1:])) for c in curves.values())  # best so far
    test = result["hpo"]["test"]  # test-split score of each search's incumbent at each checkpoint
    assert set(test) == {"untuned SVC()", "TPE", "MetaLearnedSampler.from_pretrained"}
    assert all(len(v) == len(result["hpo"]["checkpoints"]) and all(0 <= x <= 1 for x in v) for v in test.values())
    sinusoid = result["sinusoid"]["curve"]["MAML"]
    assert sinusoid[10] < sinusoid[0]  # adapting helps even after a short meta-training
