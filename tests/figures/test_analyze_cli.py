"""experiments.analyze as a user meets it: bad flags and missing runs stop with one
`error:` line and exit 1, and nothing is written."""

from tests.helpers import run_module


def _analyze_cli(*args):
    return run_module("experiments.analyze", *args)


def test_an_unknown_or_missing_figure_is_one_line(tmp_path):
    out = tmp_path / "figures"
    proc = _analyze_cli("--figure=strategies,tsne", f"--out={out}")
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: --figure: unknown figure 'tsne'; choose from ")
    proc = _analyze_cli(f"--out={out}")
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: --figure is required: all or one of ")
    assert not out.exists()


def test_report_only_without_runs_names_the_missing_workdir(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "figures"
    proc = _analyze_cli(
        "--figure=strategies", "--dataset=coat", "--seeds=2", "--report_only",
        f"--runs={runs}", f"--out={out}",
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"error: {runs}/coat_lightgcn_infonce-log_test=True/seed1: no finished run of "
        "InfoNCE seed 1 (--report_only trains nothing)"
    )
    assert proc.stderr.count("\n") == 1
    assert not out.exists()


def test_a_dataset_without_flagfiles_names_the_missing_one(tmp_path):
    proc = _analyze_cli(
        "--figure=strategies", "--dataset=tencent", f"--runs={tmp_path / 'runs'}",
        f"--out={tmp_path / 'figures'}",
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "error: experiments/configs/tencent_lightgcn_infonce.flags: no such flagfile "
        "(figure strategies)"
    )
