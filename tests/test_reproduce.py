"""experiments.reproduce and experiments.report: flagfile reading, the sweep, summaries
and paired tests."""

import dataclasses
import json
import os
import re

import numpy as np
import pytest
import scipy.stats

from advjax.errors import ConfigError, WorkdirError
from advjax.train import TrainConfig
from experiments import report, reproduce
from experiments.tables import TABLES, Cell
from tests.helpers import REPO, run_module


def _results(recall, ndcg):
    split = {"recall@20": recall, "ndcg@20": ndcg, "hit_ratio@20": min(1.0, 3 * recall)}
    return {
        "best_epoch": 5, "valid": split, "test_id": split, "test_ood": split,
        "timing": {"total_s": 10.0}, "epochs_s": 9.0,
    }  # fmt: skip


def test_every_written_table_flagfile_parses():
    # Tables may list cells whose flagfiles a later search writes (Yahoo!R3 rivals).
    written = [c for cells in TABLES.values() for c in cells if os.path.exists(c.flagfile)]
    assert len(written) >= 12
    for cell in written:
        cfg = reproduce.read_flagfile(cell.flagfile)
        # An augmented cell's file names its augmentation (the loss is InfoNCE under it),
        # a fitted model's its model (it has no loss).
        named = cfg.loss if cfg.augment == "none" else cfg.augment
        if cfg.fitted_spec is not None:
            named = cfg.backbone
            assert cell.role == "baseline" and cell.backbone == cfg.backbone
        assert named in cell.flagfile or named.replace("_", "") in cell.flagfile


def test_read_flagfile_errors_are_one_line_naming_the_file(tmp_path):
    # absl's parser reads the file, so its errors name the file and the flag, not a line.
    path = tmp_path / "x.flags"
    path.write_text("# comment\n--loss=infonce\n--lernrate=1\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: unknown flag --lernrate$"):
        reproduce.read_flagfile(str(path))
    path.write_text("--n_neg=many\n")
    with pytest.raises(ConfigError, match=r"x.flags: flag --n_neg=many: invalid literal for int"):
        reproduce.read_flagfile(str(path))
    # A flag of the CLIs that is no TrainConfig field is no setting of a cell.
    path.write_text("--loss=ccl\n--workdir=runs/x\n")
    with pytest.raises(ConfigError, match=r"x.flags: unknown flag --workdir$"):
        reproduce.read_flagfile(str(path))
    for text, message in [
        ("tau=0.5\n", "x.flags: not a flag: tau=0.5"),  # no leading --
        ("--ks=10,x\n", "x.flags: --ks takes integers, got 10,x"),
        ("--loss=hinge\n", "x.flags: unknown loss 'hinge'"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            reproduce.read_flagfile(str(path))
    with pytest.raises(ConfigError, match=r"missing.flags: Unable to open flagfile"):
        reproduce.read_flagfile(str(tmp_path / "missing.flags"))
    path.write_text("# comment\n\n--loss=ccl\n--ks=10,20\n--tau=0.5\n")
    cfg = reproduce.read_flagfile(str(path))
    assert (cfg.loss, cfg.ks, cfg.tau) == ("ccl", (10, 20), 0.5)
    assert cfg == dataclasses.replace(TrainConfig(), loss="ccl", ks=(10, 20), tau=0.5)


def test_summary_means_improvements_and_paired_tests():
    cells = [
        Cell("mf", "InfoNCE", "a.flags", (0.26, 0.19), "infonce"),
        Cell("mf", "CCL", "b.flags", None, "rival"),
        Cell("mf", "BPR", "c.flags", None, "rival"),
        Cell("mf", "AdvInfoNCE", "d.flags", (0.29, 0.2), "ours"),
    ]
    recalls = {
        "a.flags": [0.20, 0.22, 0.21],
        "b.flags": [0.23, 0.25, 0.22],
        "c.flags": [0.10, 0.11, 0.12],
        "d.flags": [0.25, 0.26, 0.28],
    }
    per_seed = {
        f[0]: {seed: _results(r, r / 2) for seed, r in enumerate(rs, 1)}
        for f, rs in recalls.items()
    }
    summary = report.summarize("toy", cells, per_seed)
    rows = {row["method"]: row for row in summary["rows"]}
    ours = rows["AdvInfoNCE"]
    assert ours["mean"]["recall@20"] == pytest.approx(np.mean(recalls["d.flags"]))
    assert ours["std"]["recall@20"] == pytest.approx(np.std(recalls["d.flags"], ddof=1))
    assert ours["imp_over_infonce_pct"]["recall@20"] == pytest.approx(100 * (0.79 / 0.63 - 1))
    assert ours["tests"]["vs_strongest_rival"]["against"] == "CCL"  # not BPR
    expected = scipy.stats.ttest_rel(recalls["d.flags"], recalls["a.flags"]).pvalue
    assert ours["tests"]["vs_infonce"]["recall@20"] == pytest.approx(expected)
    summary.update(commit="abc", machine="cpu", wall_s=60.0, runs_s=120.0)
    text = report.to_markdown(summary, "cmd")
    assert "| mf | AdvInfoNCE | 3 | 0.2633 ± 0.0153 |" in text
    assert "vs infonce (InfoNCE, 3 paired seeds): Recall@20 p = " in text


@pytest.mark.parametrize(
    "mean, std, text",
    [
        (0.26333, 0.01531, "0.2633 ± 0.0153"),
        (0.2633, 0.0, "0.2633 ± 0.0000"),  # one seed
        (0.0094993, 2.7318e-05, "0.009499 ± 0.000027"),
        (0.10042, 0.00049, "0.10042 ± 0.00049"),
        (0.1, 0.0005, "0.1000 ± 0.0005"),
    ],
)
def test_mean_std_keeps_two_digits_of_a_small_std(mean, std, text):
    assert report.mean_std_text(mean, std) == text


def test_every_variant_and_rival_gets_its_paired_tests():
    cells = [
        Cell("lightgcn", "InfoNCE", "a.flags", None, "infonce"),
        Cell("lightgcn", "Adap-tau", "b.flags", None, "rival"),
        Cell("lightgcn", "AdvInfoNCE", "c.flags", None, "ours"),
        Cell("lightgcn", "AdvInfoNCE-mlp", "d.flags", None, "variant"),
    ]
    recalls = {
        "a": [0.20, 0.22, 0.21, 0.19],
        "b": [0.23, 0.22, 0.24, 0.22],
        "c": [0.21, 0.24, 0.22, 0.20],
        "d": [0.25, 0.24, 0.27, 0.23],
    }
    per_seed = {
        name: {seed: _results(r, r / 2) for seed, r in enumerate(rs, 1)}
        for name, rs in recalls.items()
    }
    summary = report.summarize("toy", cells, per_seed)
    rows = {row["method"]: row for row in summary["rows"]}
    tests = rows["AdvInfoNCE-mlp"]["tests"]
    assert tests["vs_strongest_rival"]["against"] == "Adap-tau"
    for label, other in (("vs_infonce", "a"), ("vs_strongest_rival", "b")):
        expected = scipy.stats.ttest_rel(recalls["d"], recalls[other]).pvalue
        assert tests[label]["recall@20"] == pytest.approx(expected)
    assert set(rows["AdvInfoNCE"]["tests"]) == {"vs_infonce", "vs_strongest_rival"}
    # Each rival against AdvInfoNCE (not its variants); InfoNCE against nothing.
    rival = rows["Adap-tau"]["tests"]
    assert set(rival) == {"vs_ours"} and rival["vs_ours"]["against"] == "AdvInfoNCE"
    for metric, scale in (("recall@20", 1.0), ("ndcg@20", 0.5)):
        expected = scipy.stats.ttest_rel(
            scale * np.array(recalls["b"]), scale * np.array(recalls["c"])
        ).pvalue
        assert rival["vs_ours"][metric] == pytest.approx(expected)
    assert "tests" not in rows["InfoNCE"]
    summary.update(commit="abc", machine="cpu", wall_s=1.0, runs_s=2.0)
    text = report.to_markdown(summary, "cmd")
    lines = [line for line in text.splitlines() if line.startswith("- lightgcn ")]
    assert [line.split(" (")[0] for line in lines] == [
        "- lightgcn Adap-tau vs ours",
        "- lightgcn AdvInfoNCE vs infonce",
        "- lightgcn AdvInfoNCE vs strongest rival",
        "- lightgcn AdvInfoNCE-mlp vs infonce",
        "- lightgcn AdvInfoNCE-mlp vs strongest rival",
    ]


def _reproduce_cli(*args, cwd=REPO):
    return run_module("experiments.reproduce", *args, cwd=cwd)


def test_cli_rejects_an_unknown_table():
    proc = _reproduce_cli("--table=tencent")
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: --table must be one of coat, yahoo, ")


def test_cli_refuses_to_write_an_empty_table_or_run_outside_the_repo(tmp_path):
    empty, results = tmp_path / "no_runs", tmp_path / "results"
    proc = _reproduce_cli(
        "--table=coat", "--report_only", f"--runs={empty}", f"--results={results}"
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"error: {empty}: no finished run of table coat; nothing written"
    )
    assert not results.exists()
    proc = _reproduce_cli("--table=coat", "--report_only", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith("no such flagfile (run from the repository root)")


def test_epochs_seconds_sums_the_epoch_lines(tmp_path):
    lines = [{"epoch": 1, "epoch_s": 1.5}, {"epoch": 2, "epoch_s": 2.0}, {"final": True}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert reproduce.epochs_seconds(str(tmp_path)) == 3.5
    # An epoch trained in one program with two others counts its third.
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 3, "epoch_s": 3.0, "epoch_runs": 3}) + "\n")
    assert reproduce.epochs_seconds(str(tmp_path)) == 4.5
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write("{cut off\n")
    with pytest.raises(WorkdirError, match=r"metrics.jsonl:5: not a JSON object"):
        reproduce.epochs_seconds(str(tmp_path))


def test_finished_run_is_read_back_only_with_its_own_config(tmp_path):
    cfg = reproduce.read_flagfile("experiments/configs/coat_mf_infonce.flags")
    results = {
        **_results(0.25, 0.18),
        "flags": json.loads(json.dumps(dataclasses.asdict(cfg))),
        "platform": {"device": "NVIDIA H200", "jax": "0.11.2"},
    }
    assert reproduce.finished_results(str(tmp_path), cfg) is None  # no results.json
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert reproduce.finished_results(str(tmp_path), cfg) == results
    other = dataclasses.replace(cfg, seed=cfg.seed + 1)
    assert reproduce.finished_results(str(tmp_path), other) is None
    # A run written before TrainConfig had `propagation` still counts at its default.
    del results["flags"]["propagation"]
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert reproduce.finished_results(str(tmp_path), cfg) == results
    csr = dataclasses.replace(cfg, propagation="csr")
    assert reproduce.finished_results(str(tmp_path), csr) is None
    assert report.trained_on(results) == "NVIDIA H200 (jax 0.11.2)"
    assert report.trained_on(_results(0.2, 0.1)) == "cpu (device not recorded)"


@pytest.mark.parametrize("text", ["{bad", "[1, 2]"])
def test_unreadable_results_json_is_a_one_line_error_naming_it(tmp_path, text):
    cfg = reproduce.read_flagfile("experiments/configs/coat_mf_infonce.flags")
    (tmp_path / "results.json").write_text(text)
    with pytest.raises(WorkdirError, match=r"results.json: .*delete it to train this run again"):
        reproduce.finished_results(str(tmp_path), cfg)


def _run_of(cell: Cell, seed: int, recall: float) -> dict:
    """A finished run's results (plus epochs_s) with the cell's flags at `seed`."""
    cfg, _ = reproduce._cell_run(cell, seed, "unused")
    flags = json.loads(json.dumps(dataclasses.asdict(cfg)))
    return {**_results(recall, recall / 2), "flags": flags}


def test_published_runs_count_where_the_workdir_has_none(tmp_path):
    cells = TABLES["coat"][:2]
    per_seed = {c.name: {s: _run_of(c, s, 0.2 + s / 100) for s in (1, 2)} for c in cells}
    path = tmp_path / "coat.json"
    path.write_text(json.dumps({"runs": reproduce.run_records(cells, per_seed)}))
    published = reproduce.published_runs(str(path))
    assert sorted(published) == sorted((c.name, s) for c in cells for s in (1, 2))
    runs = str(tmp_path / "runs")
    assert reproduce.finished_run(cells[0], 2, runs, published) == per_seed[cells[0].name][2]
    assert reproduce.finished_run(cells[0], 3, runs, published) is None  # no such seed
    # A record of another configuration (here seed 2's under seed 1's key) is not reused.
    published[(cells[0].name, 1)] = per_seed[cells[0].name][2]
    said = []
    assert reproduce.finished_run(cells[0], 1, runs, published, said.append) is None
    assert said == [
        f"{cells[0].name} seed 1: the published run has other settings (seed: 2 -> 1); not counted"
    ]
    # The workdir's own finished run comes first.
    cfg, workdir = reproduce._cell_run(cells[1], 1, runs)
    os.makedirs(workdir)
    local = _run_of(cells[1], 1, 0.5)
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(local, f)
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        f.write('{"epoch": 1, "epoch_s": 4.0}\n')
    assert reproduce.finished_run(cells[1], 1, runs, published)["test_ood"]["recall@20"] == 0.5
    assert reproduce.published_runs(str(tmp_path / "absent.json")) == {}
    for bad in ({"cell": "x"}, {"cell": "x", "seed": 1, "results": {"flags": {}}}):
        path.write_text(json.dumps({"runs": [bad]}))
        with pytest.raises(WorkdirError, match=r"coat.json: run record 0 lacks cell, seed or res"):
            reproduce.published_runs(str(path))


def test_cli_rebuilds_a_table_from_its_published_runs_alone(tmp_path):
    cells = [c for c in TABLES["coat"] if c.role in ("infonce", "ours")][:2]
    per_seed = {
        cells[0].name: {s: _run_of(cells[0], s, r) for s, r in ((1, 0.25), (2, 0.26))},
        cells[1].name: {s: _run_of(cells[1], s, r) for s, r in ((1, 0.28), (2, 0.30))},
    }
    results = tmp_path / "results"
    results.mkdir()
    records = reproduce.run_records(cells, per_seed)
    (results / "coat.json").write_text(json.dumps({"runs": records}))
    args = ("--table=coat", "--report_only", f"--runs={tmp_path / 'none'}", f"--results={results}")
    proc = _reproduce_cli(*args, "--published")
    assert proc.returncode == 0, proc.stderr
    assert f"{results}/*.json: 4 published runs" in proc.stdout
    text = (results / "coat.md").read_text()
    assert "| lightgcn | InfoNCE | 2 of 5 | 0.2550 ± 0.0071 |" in text
    assert "| lightgcn | AdvInfoNCE | 2 of 5 | 0.2900 ± 0.0141 |" in text
    assert "--report_only" in text and "--published" in text
    # The rewritten JSON keeps the same records, so the next sweep can read them again.
    assert json.loads((results / "coat.json").read_text())["runs"] == records
    (results / "coat.json").write_text("{cut off")
    proc = _reproduce_cli(*args, "--published")
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: {results}/coat.json: unreadable (")


def test_cli_reports_a_table_it_cannot_write_on_one_line(tmp_path):
    cells = [c for c in TABLES["coat"] if c.role == "infonce"][:1]
    per_seed = {cells[0].name: {1: _run_of(cells[0], 1, 0.25)}}
    results = tmp_path / "results"
    results.mkdir()
    (results / "coat.json").write_text(json.dumps({"runs": reproduce.run_records(cells, per_seed)}))
    (results / "coat.md").mkdir()  # the table cannot replace a directory
    proc = _reproduce_cli(
        "--table=coat", "--report_only", "--published", f"--runs={tmp_path / 'none'}",
        f"--results={results}",
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("error: ") == 1 and "coat.md" in proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.endswith("\n")
    assert len(proc.stderr.splitlines()) == 1


def test_markdown_names_the_devices_of_each_cell():
    cells = [Cell("mf", "InfoNCE", "a.flags", None, "infonce"), Cell("mf", "Adv", "b.flags")]
    gpu = {**_results(0.2, 0.1), "platform": {"device": "NVIDIA H200", "jax": "0.11.2"}}
    per_seed = {"a": {1: _results(0.2, 0.1), 2: _results(0.2, 0.1)}, "b": {1: gpu, 2: gpu}}
    summary = report.summarize("toy", cells, per_seed)
    summary.update(commit="abc", machine="x86_64, 2 cores", wall_s=1.0, runs_s=2.0)
    text = report.to_markdown(summary, "cmd")
    assert (
        "runs trained on cpu (device not recorded): mf InfoNCE; "
        "NVIDIA H200 (jax 0.11.2): mf Adv;" in text
    )
    # Since results.json records LightGCN's propagation path, the table names it too.
    platform = {"device": "NVIDIA H100 80GB HBM3", "jax": "0.11.2", "propagation": "csr"}
    assert report.trained_on({"platform": platform}) == "NVIDIA H100 80GB HBM3 (jax 0.11.2, csr)"
    mf = {**platform, "propagation": None}
    assert report.trained_on({"platform": mf}) == "NVIDIA H100 80GB HBM3 (jax 0.11.2)"


def test_partial_table_pairs_common_seeds_and_marks_missing_cells():
    cells = [
        Cell("mf", "InfoNCE", "a.flags", None, "infonce"),
        Cell("mf", "CCL", "b.flags", None, "rival"),
        Cell("mf", "AdvInfoNCE", "c.flags", None, "ours"),
    ]
    base = {1: 0.20, 2: 0.22, 3: 0.21, 5: 0.24}
    ours = {1: 0.25, 2: 0.26, 3: 0.28, 4: 0.30}
    per_seed = {
        "a": {s: _results(r, r / 2) for s, r in base.items()},
        "c": {s: _results(r, r / 2) for s, r in ours.items()},
    }
    summary = report.summarize("toy", cells, per_seed)
    rows = {row["method"]: row for row in summary["rows"]}
    assert rows["CCL"]["seeds"] == 0 and "mean" not in rows["CCL"]
    test = rows["AdvInfoNCE"]["tests"]["vs_infonce"]
    assert test["seeds"] == 3  # seeds 1, 2, 3 only
    expected = scipy.stats.ttest_rel([0.25, 0.26, 0.28], [0.20, 0.22, 0.21]).pvalue
    assert test["recall@20"] == pytest.approx(expected)
    assert "vs_strongest_rival" not in rows["AdvInfoNCE"]["tests"]  # CCL has no runs
    summary.update(commit="abc", machine="cpu", wall_s=1.0, runs_s=2.0, seeds_requested=5)
    text = report.to_markdown(summary, "cmd")
    assert "| mf | CCL | 0 of 5 | not run |" in text
    assert "| mf | AdvInfoNCE | 4 of 5 | 0.2725 ± " in text
    empty = report.summarize("toy", cells, {})
    empty.update(commit="abc", machine="cpu", wall_s=1.0, runs_s=0.0, seeds_requested=5)
    text = report.to_markdown(empty, "cmd")
    assert "runs trained on nothing yet (no finished run)" in text
    assert "Paired t-tests over seeds: none yet" in text


def test_distinct_test_id_gets_its_own_table():
    cells = [Cell("lightgcn", "InfoNCE", "a.flags", None, "infonce")]

    def run(ood, iid):
        result = _results(ood, ood / 2)
        return {**result, "test_id": _results(iid, iid / 2)["test_id"]}

    per_seed = {"a": {1: run(0.05, 0.20), 2: run(0.07, 0.22)}}
    summary = report.summarize("toy", cells, per_seed)
    row = summary["rows"][0]
    assert row["mean"]["recall@20"] == pytest.approx(0.06)  # the main table is OOD
    assert row["id_mean"]["recall@20"] == pytest.approx(0.21)
    summary.update(commit="abc", machine="cpu", wall_s=1.0, runs_s=2.0)
    text = report.to_markdown(summary, "cmd")
    assert "| lightgcn | InfoNCE | 2 | 0.2100 ± 0.0141 |" in text
    # Identical test files (Coat, Yahoo!R3) get no second table, also when a GPU's
    # reductions leave their metrics apart in the last digits (KuaiRec on an H100).
    same = report.summarize("toy", cells, {"a": {1: _results(0.05, 0.02)}})
    assert "id_mean" not in same["rows"][0]
    rounded = _results(0.05, 0.02)
    rounded["test_id"] = {**rounded["test_id"], "ndcg@20": 0.02 * (1 + 2e-9)}
    same = report.summarize("toy", cells, {"a": {1: rounded, 2: _results(0.05, 0.02)}})
    assert "id_mean" not in same["rows"][0]


def test_a_popularity_shift_split_gets_paper_table_2s_layout():
    cells = [
        Cell("mf", "InfoNCE", "a.flags", None, "infonce"),
        Cell("mf", "AdvInfoNCE", "b.flags", None, "ours"),
    ]

    def run(recalls, valid):
        """Results on test_ood_1..3 with these recalls (NDCG half of it), test_id, valid."""
        split = {f"test_ood_{k}": _results(r, r / 2)["valid"] for k, r in enumerate(recalls, 1)}
        base = _results(valid, valid / 2)
        del base["test_ood"]
        return {**base, **split}

    infonce = {1: run([0.10, 0.06, 0.03], 0.30), 2: run([0.12, 0.07, 0.05], 0.32)}
    adv = {1: run([0.11, 0.08, 0.04], 0.31), 2: run([0.14, 0.08, 0.07], 0.34)}
    # Ordered by their number, not by name: test_ood_10 comes after test_ood_2.
    assert report.shift_splits({"test_ood_10": 0, "test_ood_2": 0, "test_id": 0}) == [
        "test_ood_2",
        "test_ood_10",
    ]
    summary = report.summarize("toy", cells, {"a": infonce, "b": adv})
    ours = summary["rows"][1]
    assert ours["split"] == "test_ood_3"  # the strongest shift heads the main table
    assert ours["mean"]["recall@20"] == pytest.approx(0.055)
    assert list(ours["shift"]) == ["test_ood_1", "test_ood_2", "test_ood_3", "test_id", "valid"]
    assert ours["shift"]["test_ood_1"]["mean"]["recall@20"] == pytest.approx(0.125)
    assert ours["shift"]["valid"]["mean"]["ndcg@20"] == pytest.approx(0.1625)
    test = ours["shift"]["test_ood_2"]["tests"]["vs_infonce"]
    expected = scipy.stats.ttest_rel([0.08, 0.08], [0.06, 0.07]).pvalue
    assert test["recall@20"] == pytest.approx(expected)
    summary.update(commit="abc", machine="cpu", wall_s=1.0, runs_s=2.0)
    text = report.to_markdown(summary, "cmd")
    assert "| backbone | method | seeds | test_ood_1 NDCG@20 | test_ood_2 NDCG@20 | " in text
    assert "test_id NDCG@20 | valid NDCG@20 |" in text
    assert "| mf | AdvInfoNCE | 2 | 0.1250 ± 0.0212 | 0.0800 ± 0.0000 |" in text
    assert "- test_ood_2: mf AdvInfoNCE vs infonce (InfoNCE, 2 paired seeds)" in text


def test_shards_split_the_sweep_once_each():
    cells = [Cell("mf", m, f"{m}.flags") for m in ("a", "b", "c")]
    for count in (1, 2, 3, 4):
        trained = [
            (cell.name, seed)
            for index in range(count)
            for cell, seed, ours in reproduce.sweep(cells, 5, (index, count))
            if ours
        ]
        assert sorted(trained) == sorted((c.name, s) for c in cells for s in range(1, 6))
    # Seed by seed: a sweep stopped part way leaves whole seeds to pair.
    order = [(cell.name, seed) for cell, seed, _ in reproduce.sweep(cells, 2, (1, 2))]
    assert order == [("a", 1), ("b", 1), ("c", 1), ("a", 2), ("b", 2), ("c", 2)]
    assert reproduce.parse_shard("1/2") == (1, 2)
    for bad in ("2/2", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ConfigError, match="--shard"):
            reproduce.parse_shard(bad)


def test_a_deterministic_cell_runs_once_and_its_tests_are_one_sample():
    cells = [Cell("mf", m, f"{m}.flags") for m in ("a", "b")]
    order = [(c.name, s) for c, s, _ in reproduce.sweep(cells, 3, (0, 1), frozenset({"b"}))]
    assert order == [("a", 1), ("b", 1), ("a", 2), ("a", 3)]
    assert reproduce.deterministic(Cell("ease", "EASE", "experiments/configs/coat_ease.flags"))
    assert not reproduce.deterministic(Cell("ials", "iALS", "experiments/configs/coat_ials.flags"))
    cells = [
        Cell("lightgcn", "InfoNCE", "a.flags", None, "infonce"),
        Cell("lightgcn", "AdvInfoNCE", "d.flags", None, "ours"),
        Cell("mf", "AdvInfoNCE", "e.flags", None, "ours"),
        Cell("ease", "EASE", "b.flags", None, "baseline"),
    ]
    recalls = {"a": [0.20, 0.22, 0.21], "d": [0.25, 0.26, 0.28], "e": [0.24, 0.2, 0.27]}
    per_seed = {
        f"{k}": {s: _results(r, r / 2) for s, r in enumerate(v, 1)} for k, v in recalls.items()
    }
    ease = _results(0.23, 0.1)
    ease["flags"] = {"backbone": "ease"}
    per_seed["b"] = {1: ease}
    summary = report.summarize("toy", cells, per_seed)
    rows = {(r["backbone"], r["method"]): r for r in summary["rows"]}
    baseline = rows["ease", "EASE"]
    assert baseline["deterministic"] and baseline["seeds"] == 1
    assert set(baseline["tests"]) == {"vs_lightgcn_infonce", "vs_lightgcn_ours", "vs_mf_ours"}
    for label, key in [("vs_lightgcn_ours", "d"), ("vs_mf_ours", "e")]:
        expected = scipy.stats.ttest_1samp(np.array(recalls[key]) - 0.23, 0.0).pvalue
        assert baseline["tests"][label]["recall@20"] == pytest.approx(expected)
        assert baseline["tests"][label]["seeds"] == 3
    # A baseline is no rival loss: AdvInfoNCE's strongest rival is not EASE.
    assert "vs_strongest_rival" not in rows["lightgcn", "AdvInfoNCE"]["tests"]
    summary.update(commit="abc", machine="cpu", wall_s=1.0, runs_s=1.0, seeds_requested=3)
    text = report.to_markdown(summary, "cmd")
    assert "| ease | EASE | 1 (deterministic) | 0.2300 ± 0.0000 |" in text
    assert "one-sample t-tests of the other cell's seeds against its value" in text


def test_a_cell_without_runs_keeps_a_published_tables_row(tmp_path):
    cells = [
        Cell("mf", "InfoNCE", "a.flags", None, "infonce"),
        Cell("ials", "iALS", "b.flags", None, "baseline"),
    ]
    old = report.summarize("old", cells[:1], {"a": {s: _results(r, r / 2) for s, r in
                                                     enumerate([0.2, 0.22, 0.21], 1)}})  # fmt: skip
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "bench.json").write_text(json.dumps({"not": "a table"}))
    kept = report.kept_rows(str(tmp_path), "new")
    assert list(kept) == [("a.flags", "{}")]
    per_seed = {"b": {s: _results(r, r / 2) for s, r in enumerate([0.25, 0.26, 0.24], 1)}}
    summary = report.summarize("new", cells, per_seed, kept)
    infonce = summary["rows"][0]
    assert infonce["kept"] and infonce["per_seed"]["recall@20"] == [0.2, 0.22, 0.21]
    expected = scipy.stats.ttest_rel([0.25, 0.26, 0.24], [0.2, 0.22, 0.21]).pvalue
    assert summary["rows"][1]["tests"]["vs_mf_infonce"]["recall@20"] == pytest.approx(expected)
    summary.update(commit="abc", machine="cpu", wall_s=1.0, runs_s=1.0)
    assert "| mf | InfoNCE | 3 (kept) |" in report.to_markdown(summary, "cmd")


def test_a_kept_row_is_not_trained_unless_it_has_runs(tmp_path):
    cells = [Cell("mf", m, f"{m}.flags") for m in ("a", "b", "c")]
    runs = reproduce.sweep(cells, 2, (0, 1))
    kept = {(f"{m}.flags", "{}"): {"seed_list": [1, 2]} for m in ("a", "b", "c")}
    published = {("b", 1): {}}  # b has a published run record: its runs are the row
    (tmp_path / "c" / "seed2").mkdir(parents=True)  # c has a workdir here
    trained = reproduce.keep_published_rows(runs, kept, published, str(tmp_path))
    assert [(c.name, s) for c, s, ours in trained if ours] == [("b", 1), ("c", 1), ("b", 2),
                                                               ("c", 2)]  # fmt: skip


def test_published_runs_of_every_table_count_the_tables_own_first(tmp_path):
    cell = TABLES["coat"][0]
    mine, theirs = _run_of(cell, 1, 0.3), _run_of(cell, 1, 0.2)
    other = _run_of(cell, 2, 0.25)
    (tmp_path / "coat.json").write_text(
        json.dumps({"rows": [], "runs": reproduce.run_records([cell], {cell.name: {1: mine}})})
    )
    (tmp_path / "coat_x.json").write_text(json.dumps({"rows": [], "runs": reproduce.run_records(
        [cell], {cell.name: {1: theirs, 2: other}})}))  # fmt: skip
    (tmp_path / "record.json").write_text(json.dumps({"cells": []}))  # a benchmark's record
    published = reproduce.every_published_run(str(tmp_path), "coat")
    assert published == {(cell.name, 1): mine, (cell.name, 2): other}


def test_training_order_groups_a_cells_seeds_of_this_shard():
    cells = [Cell("mf", m, f"{m}.flags") for m in ("a", "b")]
    runs = reproduce.sweep(cells, 3, (0, 2))  # a1 b1 a2 b2 a3 b3: this shard trains a's
    grouped = [(c.name, seeds, ours) for c, seeds, ours in reproduce.training_order(runs, True)]
    assert grouped == [("a", [1, 2, 3], True), ("b", [1], False), ("b", [2], False),
                       ("b", [3], False)]  # fmt: skip
    alone = [(c.name, seeds, ours) for c, seeds, ours in reproduce.training_order(runs, False)]
    assert alone == [(c.name, [s], ours) for c, s, ours in runs]
    trained = sorted((name, s) for name, seeds, ours in grouped if ours for s in seeds)
    assert trained == sorted((c.name, s) for c, s, ours in runs if ours)


def test_cell_seeds_in_one_program_equal_the_seeds_alone(tmp_path):
    short = (("max_epochs", 30), ("patience", 2))  # seed 3 stops at 15, seed 1 goes on
    cell = Cell("mf", "infonce", "experiments/configs/coat_mf_infonce.flags", overrides=short)
    logs = {seed: (lambda line: None) for seed in (1, 3)}
    together = reproduce.run_cell_seeds(cell, [1, 3], str(tmp_path / "b"), logs)
    for seed in (1, 3):
        alone = reproduce.run_cell(cell, seed, str(tmp_path / "a"))
        for key in ("best_epoch", "valid", "test_ood"):
            assert together[seed][key] == alone[key]
        assert together[seed]["timing"]["runs_in_program"] == 2
        assert 0 < together[seed]["epochs_s"]
    # Finished seeds are re-reported, not trained again.
    again = reproduce.run_cell_seeds(cell, [1, 3], str(tmp_path / "b"), logs)
    assert again == together


def test_progress_lines_are_the_validations_of_a_real_run():
    from advjax.data import load_dataset
    from advjax.train import TrainConfig, train_and_evaluate
    from advjax.train.sinks import ProgressLines

    shown = []
    cfg = TrainConfig(max_epochs=6, eval_every=3, patience=1)
    sink = ProgressLines(shown.append, every_epoch=False)
    train_and_evaluate(cfg, None, data=load_dataset("coat"), sinks=[sink])
    assert [line[:10] for line in shown if line.startswith("epoch")] == ["epoch    3", "epoch    6"]
    assert len(shown) in (2, 3)  # plus "early stop" when epoch 6 did not improve
    assert all("valid recall@20" in line for line in shown if line.startswith("epoch"))
