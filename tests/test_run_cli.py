"""experiments.run as a user runs it: a subprocess, its exit code and what it prints."""

import json

import pytest

from tests.helpers import REPO, run_module


def _run(*args, cwd=REPO):
    return run_module("experiments.run", *args, cwd=cwd)


def _assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_missing_data_dir(tmp_path):
    missing = tmp_path / "nowhere"
    proc = _run(f"--data_dir={missing}", f"--workdir={tmp_path}/w")
    _assert_one_line_error(proc, str(missing))
    assert proc.returncode == 1


@pytest.mark.parametrize(
    "module", ["experiments.run", "experiments.search", "experiments.reproduce"]
)
def test_every_cli_exits_the_same_way(tmp_path, module):
    # Exit 2 and one line for a flag error (unknown flag, stray argument) ...
    proc = run_module(module, "--lernrate=3")
    _assert_one_line_error(proc, "lernrate")
    assert proc.returncode == 2
    proc = run_module(module, "stray")
    _assert_one_line_error(proc, "unexpected arguments: stray")
    assert proc.returncode == 2
    # ... exit 1 and one line for a setting the run cannot use.
    missing = tmp_path / "nowhere"
    bad_setting = {
        "experiments.run": ([f"--data_dir={missing}", f"--workdir={tmp_path}/w"], str(missing)),
        "experiments.search": ([f"--data_dir={missing}", "--grid=tau=0.3"], str(missing)),
        "experiments.reproduce": (["--table=nope"], "--table must be one of"),
    }
    args, fragment = bad_setting[module]
    proc = run_module(module, *args, "--compilation_cache=")
    _assert_one_line_error(proc, fragment)
    assert proc.returncode == 1
    assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_malformed_split_file_names_file_and_line(tmp_path):
    split = tmp_path / "split"
    split.mkdir()
    (split / "train.txt").write_text("0 1 2\n1 2 x3\n")
    _assert_one_line_error(
        _run(f"--data_dir={split}", f"--workdir={tmp_path}/w"), "train.txt:2", "x3"
    )


def test_bad_setting_is_one_line(tmp_path):
    _assert_one_line_error(_run("--loss=hinge", f"--workdir={tmp_path}/w"), "hinge")
    _assert_one_line_error(_run("--ks=10,x", f"--workdir={tmp_path}/w"), "--ks")
    _assert_one_line_error(
        _run("--backbone=lightgcn", f"--workdir={tmp_path}/w"), "needs --n_layers >= 1"
    )
    _assert_one_line_error(
        _run("--backbone=mf", "--n_layers=2", f"--workdir={tmp_path}/w"),
        "--n_layers=2 is a setting of --backbone=lightgcn",
    )


@pytest.mark.parametrize("flagfile", ["coat_mf_advinfonce.flags"])
def test_flagfile_run_writes_results(tmp_path, flagfile):
    proc = _run(
        f"--flagfile=experiments/configs/{flagfile}",
        "--max_epochs=3",
        "--eval_every=1",
        f"--workdir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "platform " in proc.stdout and "devices " in proc.stdout
    assert proc.stdout.count("epoch ") >= 3
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["flags"]["loss"] == "adv_infonce" and results["flags"]["tau"] == 0.75
    assert 1 <= results["best_epoch"] <= 3
    assert set(results) >= {"valid", "test_id", "test_ood"}


def test_unknown_flag_in_flagfile_and_wrong_type(tmp_path):
    flagfile = tmp_path / "bad.flags"
    flagfile.write_text("--lr=0.01\n--lernrate=3\n")
    proc = _run(f"--flagfile={flagfile}")
    _assert_one_line_error(proc, "lernrate")
    assert proc.returncode == 2
    proc = _run("--lr=abc")
    _assert_one_line_error(proc, "--lr=abc")
    assert proc.returncode == 2


def test_ids_beyond_declared_n_items(tmp_path):
    _assert_one_line_error(
        _run("--n_items=100", f"--workdir={tmp_path}/w"), "train.txt:1", "--n_items=100"
    )
