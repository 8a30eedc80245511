"""experiments.search: grid parsing, resuming, and choosing by validation only."""

import json
import os

import numpy as np
import pytest

from advjax.errors import ConfigError
from advjax.files import write_atomically
from advjax.train import TrainConfig
from experiments import search
from tests.helpers import kill_module_after, run_module


def test_parse_grid_types_values_by_field():
    points = search.parse_grid("tau=0.1,0.2; n_neg=4 ;loss=ccl")
    assert points == [
        {"tau": 0.1, "n_neg": 4, "loss": "ccl"},
        {"tau": 0.2, "n_neg": 4, "loss": "ccl"},
    ]
    with pytest.raises(ConfigError, match="unknown setting 'lernrate'"):
        search.parse_grid("lernrate=1")
    with pytest.raises(ConfigError, match="n_neg takes int"):
        search.parse_grid("n_neg=0.5")


def test_search_picks_by_valid_and_resumes(tmp_path, monkeypatch):
    writes = []

    def spy(path, text):  # every write of the record, kept to check what went out
        writes.append((path, json.loads(text)))
        write_atomically(path, text)

    monkeypatch.setattr(search, "write_atomically", spy)
    base = TrainConfig(loss="infonce", max_epochs=4, eval_every=2, lr=0.01)
    out = str(tmp_path / "s.json")
    lines = []
    points = search.parse_grid("tau=0.2,0.75")
    record = search.search(base, points, out, log=lines.append, batch=False)
    # One atomic write per point, then the final record with the winner; nothing else
    # writes the file, and no temporary is left.
    assert [path for path, _ in writes] == [out] * 3
    assert "best" not in writes[1][1] and writes[2][1] == json.loads(json.dumps(record))
    assert json.loads((tmp_path / "s.json").read_text()) == writes[2][1]
    assert os.listdir(tmp_path) == ["s.json"]
    finished = [line for line in lines if " | " not in line]  # one per point
    assert len(record["points"]) == 2 and len(finished) == 2
    # Each point's validations are shown as it trains (epochs 2 and 4 of 4).
    assert sum(line.startswith("[1/2] {'tau': 0.2}: epoch") for line in lines) == 2
    valid = [p["valid"]["recall@20"] for p in record["points"]]
    assert record["best"]["valid"]["recall@20"] == max(valid)
    assert {"test_id", "test_ood", "best_epoch"} <= set(record["best"])
    # A second call with one more point runs only that one.
    lines.clear()
    record = search.search(
        base, search.parse_grid("tau=0.2,0.75,0.5"), out, log=lines.append, batch=False
    )
    finished = [line for line in lines if " | " not in line]
    assert len(finished) == 1 and "0.5" in finished[0] and len(record["points"]) == 3
    assert json.loads((tmp_path / "s.json").read_text())["best"] == record["best"]
    assert all("0.5" in line for line in lines)  # nothing else trained
    with pytest.raises(ConfigError, match="another base configuration .*loss: 'infonce' -> 'ccl'"):
        search.search(TrainConfig(loss="ccl"), points, out)


def test_points_differing_in_traced_settings_train_together(tmp_path):
    base = TrainConfig(loss="infonce", max_epochs=6, eval_every=2, lr=0.01)
    points = search.parse_grid("tau=0.2,0.75;n_layers=0,1")
    groups = search.point_groups(base, list(enumerate(points)), True)
    # tau may vary in one program, n_layers may not: one group per backbone.
    assert [[p for _, p in g] for g in groups] == [
        [{"tau": 0.2, "n_layers": 0}, {"tau": 0.75, "n_layers": 0}],
        [{"tau": 0.2, "n_layers": 1}, {"tau": 0.75, "n_layers": 1}],
    ]
    assert search.point_groups(base, [(0, points[0])], False) == [[(0, points[0])]]
    lines = []
    pair = [points[0], points[2]]  # MF at both temperatures
    together = search.search(base, pair, str(tmp_path / "b.json"), log=lines.append)
    alone = search.search(base, pair, str(tmp_path / "a.json"), batch=False)
    assert [p["runs_in_program"] for p in together["points"]] == [2, 2]
    for b, a in zip(together["points"], alone["points"], strict=True):
        assert b["point"] == a["point"] and b["best_epoch"] == a["best_epoch"]
        np.testing.assert_allclose(b["valid"]["recall@20"], a["valid"]["recall@20"], atol=2e-3)
    assert sum(line.startswith("[2/2] {'tau': 0.75, 'n_layers': 0}: epoch") for line in lines) == 3


@pytest.mark.parametrize(
    "text, message",
    [("{cut", "s.json: unreadable"), ('{"points": []}', "s.json: not a search record")],
)
def test_damaged_record_is_a_one_line_error(tmp_path, text, message):
    (tmp_path / "s.json").write_text(text)
    with pytest.raises(ConfigError, match=message):
        search.search(TrainConfig(), [{"tau": 0.2}], str(tmp_path / "s.json"))


def test_cli_prints_flag_lines(tmp_path):
    out = tmp_path / "s.json"
    proc = run_module(
        "experiments.search", "--loss=infonce", "--max_epochs=2", "--eval_every=2",
        "--grid=tau=0.3", f"--out={out}", "--compilation_cache=",
        f"--runs={tmp_path / 'runs'}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "--tau=0.3" in proc.stdout.splitlines()
    assert json.loads(out.read_text())["best"]["point"] == {"tau": 0.3}
    bad = run_module("experiments.search", "--grid=nope=1")
    assert bad.returncode == 1 and bad.stderr.strip() == "error: --grid: unknown setting 'nope'"


def test_killed_point_resumes_from_its_checkpoint(tmp_path):
    """A point killed after its first validation continues from that checkpoint (in
    runs/<out's name>/<point>) and ends as the same point trained straight through."""
    args = [
        "--loss=infonce", "--lr=0.01", "--max_epochs=6", "--eval_every=2",
        "--grid=tau=0.3", "--compilation_cache=", f"--runs={tmp_path / 'runs'}",
    ]  # fmt: skip
    out = tmp_path / "cut.json"
    kill_module_after(
        "experiments.search", *args, f"--out={out}", marker="[1/1] {'tau': 0.3}: epoch    2"
    )  # fmt: skip
    assert not out.exists()
    workdir = tmp_path / "runs" / "cut" / "tau=0.3"
    assert (workdir / "checkpoints").is_dir()
    resumed = run_module("experiments.search", *args, f"--out={out}")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from the checkpoint of epoch 2" in resumed.stdout
    straight = run_module("experiments.search", *args, f"--out={tmp_path / 'straight.json'}")
    assert straight.returncode == 0, straight.stderr
    a, b = (json.loads(path.read_text())["best"] for path in (out, tmp_path / "straight.json"))
    for name in ("best_epoch", "valid", "test_id", "test_ood"):
        assert a[name] == b[name], name
    assert (workdir / "results.json").exists()
