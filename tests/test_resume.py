"""A run killed with SIGKILL and resumed ends bit-identical to an uninterrupted one."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.helpers import REPO, kill_module_after, run_module

# Small but complete: adversarial epochs at 1-based epochs 3, 8, 13, 18; early stopping.
ARGS = [
    "--lr=0.01",
    "--t_adv=5",
    "--e_adv=4",
    "--max_epochs=40",
    "--eval_every=5",
    "--patience=3",
    "--max_to_keep=2",
]


def _start(workdir, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.run", *ARGS, f"--workdir={workdir}", *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(workdir, *extra):
    proc = run_module("experiments.run", *ARGS, f"--workdir={workdir}", *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _kill_after(workdir, marker: str, *extra) -> str:
    """Starts a run and SIGKILLs it as soon as it prints a line starting with `marker`."""
    args = (*ARGS, f"--workdir={workdir}", *extra)
    return kill_module_after("experiments.run", *args, marker=marker)


def _comparable(workdir) -> dict:
    results = json.loads((pathlib.Path(workdir) / "results.json").read_text())
    results.pop("timing")
    return results


@pytest.fixture(scope="module")
def straight_workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("straight")
    _run(workdir)
    return workdir


@pytest.fixture(scope="module")
def uninterrupted(straight_workdir):
    return _comparable(straight_workdir)


def _newest_checkpoint(workdir) -> int:
    return max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def _logged_epochs(workdir) -> list[int]:
    lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines if "final" not in json.loads(line)]


def test_killed_runs_resume_bit_identical(tmp_path, uninterrupted, straight_workdir):
    workdir = tmp_path / "killed"
    # At the start of the first adversarial epoch (its compile and run follow the epoch
    # 2 line), right after a checkpoint, between checkpoints, and again at the start of
    # a later adversarial epoch. Each resume must start from the newest checkpoint
    # (checkpoints every 5 epochs; a fast machine may write one more before the signal).
    _kill_after(workdir, "epoch    2 ")
    _kill_after(workdir, "epoch    5 ")
    _kill_after(workdir, "epoch    9 ")
    newest = _newest_checkpoint(workdir)
    log = _kill_after(workdir, "epoch   12 ")
    assert f"resumed from the checkpoint of epoch {newest}" in log and newest >= 5
    newest = _newest_checkpoint(workdir)
    out = _run(workdir)
    assert f"resumed from the checkpoint of epoch {newest}" in out and newest >= 10
    assert _comparable(workdir) == uninterrupted
    # Replayed epochs are logged once: the scalars of killed epochs were cut on resume.
    assert _logged_epochs(workdir) == _logged_epochs(straight_workdir)
    kept = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert len(kept) == 2  # --max_to_keep


def test_test_only_reports_the_best_checkpoint(straight_workdir, uninterrupted):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.run", f"--workdir={straight_workdir}", "--test_only"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"best checkpoint (epoch {uninterrupted['best_epoch']})" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("test_ood"))
    assert f"{uninterrupted['test_ood']['recall@20']:.4f}" in row
    assert not [line for line in proc.stdout.splitlines() if line.startswith("epoch ")]


def test_finished_run_reruns_to_the_same_report(tmp_path, uninterrupted):
    workdir = tmp_path / "again"
    _run(workdir)
    out = _run(workdir)  # resumes at its end, trains nothing, reports again
    assert "resumed from the checkpoint of epoch 40" in out
    assert not [line for line in out.splitlines() if line.startswith("epoch ")]
    assert _comparable(workdir) == uninterrupted


def test_other_configuration_is_refused_unless_restart(tmp_path):
    workdir = tmp_path / "cfg"
    _kill_after(workdir, "epoch    5 ")
    proc = _start(workdir, "--tau=0.5")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("error: ")]
    assert "another configuration" in line and "tau: 0.75 -> 0.5" in line and "--restart" in line
    out = _run(workdir, "--tau=0.5", "--restart", "--max_epochs=5")
    assert "discarding" in out and "resumed" not in out


def test_corrupted_newest_checkpoint_falls_back(tmp_path, uninterrupted):
    workdir = tmp_path / "corrupt"
    _kill_after(workdir, "epoch   11 ")
    newest = _newest_checkpoint(workdir)
    assert newest >= 10
    # Damage every data file of the newest checkpoint's state.
    for path in (workdir / "checkpoints" / str(newest) / "state").rglob("*"):
        if path.is_file() and path.stat().st_size > 0:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    out = _run(workdir)
    lines = [x for x in out.splitlines() if "unreadable" in x]
    assert len(lines) == 1 and f"epoch {newest}" in lines[0]
    assert f"resumed from the checkpoint of epoch {newest - 5}" in out
    assert (workdir / "checkpoints_unreadable" / str(newest)).is_dir()
    assert _comparable(workdir) == uninterrupted


def test_unwritable_workdir_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = _start(blocker / "sub")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err
    assert any(x.startswith("error: ") and str(blocker) in x for x in err.splitlines())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_readonly_workdir(tmp_path):
    workdir = tmp_path / "ro"
    workdir.mkdir()
    workdir.chmod(0o500)
    proc = _start(workdir)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "not writable" in err


@pytest.fixture
def full_disk(tmp_path):
    """A 200 KiB tmpfs: room for the config and scalars, not for a checkpoint."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_disk_full_is_one_line(full_disk):
    proc = _start(full_disk / "w")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err, err[-3000:]
    (line,) = [x for x in err.splitlines() if not x.startswith("warning: ")]
    assert line.startswith("error: ") and "no space left on device" in line


def test_killed_seed_batch_resumes_bit_identical(tmp_path, uninterrupted, straight_workdir):
    """--seeds trains in one program; killed and resumed, each seed's report equals the
    seed trained alone without interruption (the default seed, 2023, is `uninterrupted`)."""
    root = tmp_path / "seeds"
    _kill_after(root, "seed 7: epoch    5 ", "--seeds=2023,7")
    log = _kill_after(root, "seed 7: epoch   10 ", "--seeds=2023,7")
    assert "seed 2023: resumed from the checkpoint of epoch 5" in log, log[-2000:]
    out = _run(root, "--seeds=2023,7")
    assert "seed 7: resumed from the checkpoint of epoch" in out
    assert _comparable(root / "seed2023") == uninterrupted
    assert _logged_epochs(root / "seed2023") == _logged_epochs(straight_workdir)
    alone = tmp_path / "seed7_alone"
    _run(alone, "--seed=7")
    assert _comparable(root / "seed7") == _comparable(alone)
    table = out[out.index("seed | best epoch") :].splitlines()
    assert table[1].startswith(f"2023 | {uninterrupted['best_epoch']} | ")
    assert [row.split(" | ")[0] for row in table[3:5]] == ["mean", "std"]
