"""Saved configurations (config.json, results.json flags) against the current TrainConfig:
a field added since they were written reads as its default, so finished runs still count
and checkpoints still resume; any real difference is still caught."""

import dataclasses
import json

import pytest

from advjax.errors import ConfigError, WorkdirError
from advjax.train import TrainConfig
from advjax.train.checkpoints import RunCheckpoints, load_run_config
from advjax.train.config import config_dict, config_differences


def _saved_without(cfg: TrainConfig, *names: str) -> dict:
    """cfg as a file written before the fields `names` existed."""
    saved = json.loads(json.dumps(config_dict(cfg)))
    for name in names:
        del saved[name]
    return saved


def test_equal_configuration_has_no_differences():
    cfg = TrainConfig(n_layers=2, loss="infonce", tau=0.3)
    assert config_differences(json.loads(json.dumps(config_dict(cfg))), cfg) == {}
    # results.json stores dataclasses.asdict (ks a tuple, a list once read back): equal too.
    assert config_differences(json.loads(json.dumps(dataclasses.asdict(cfg))), cfg) == {}


def test_missing_field_reads_as_its_default():
    cfg = TrainConfig(n_layers=2, loss="infonce")
    saved = _saved_without(cfg, "propagation", "hardness_strategy")
    assert config_differences(saved, cfg) == {}
    # The current run sets a missing field away from its default: that is a difference.
    other = dataclasses.replace(cfg, propagation="csr")
    assert config_differences(saved, other) == {"propagation": ("auto", "csr")}


def test_changed_and_removed_fields_are_differences():
    cfg = TrainConfig()
    saved = json.loads(json.dumps(config_dict(cfg)))
    saved["tau"] = cfg.tau + 0.5
    saved["old_flag"] = 3
    assert config_differences(saved, cfg) == {
        "tau": (cfg.tau + 0.5, cfg.tau),
        "old_flag": (3, None),
    }


def test_checkpoints_resume_a_config_written_before_a_field_existed(tmp_path):
    cfg = TrainConfig(max_epochs=5)
    (tmp_path / "config.json").write_text(json.dumps(_saved_without(cfg, "propagation")))
    RunCheckpoints(str(tmp_path), cfg, log=lambda line: None)  # accepted, not refused
    assert json.loads((tmp_path / "config.json").read_text())["propagation"] == "auto"
    with pytest.raises(ConfigError, match=r"propagation: 'auto' -> 'csr'"):
        RunCheckpoints(str(tmp_path), dataclasses.replace(cfg, propagation="csr"))


def test_load_run_config_fills_new_fields_and_names_removed_ones(tmp_path):
    cfg = TrainConfig(tau=0.3)
    (tmp_path / "config.json").write_text(json.dumps(_saved_without(cfg, "propagation")))
    assert load_run_config(str(tmp_path)) == cfg
    saved = {**config_dict(cfg), "old_flag": 1}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(
        WorkdirError, match=r"config.json: settings this version no longer has: old_flag"
    ):
        load_run_config(str(tmp_path))


@pytest.mark.parametrize("text", ["{cut", "[1, 2]"])
def test_damaged_config_json_is_refused_unless_restart(tmp_path, text):
    cfg = TrainConfig(max_epochs=5)
    (tmp_path / "config.json").write_text(text)
    (tmp_path / "checkpoints" / "5").mkdir(parents=True)
    with pytest.raises(WorkdirError, match=r"config.json: .*pass --restart to discard this run"):
        RunCheckpoints(str(tmp_path), cfg, log=lambda line: None)
    with pytest.raises(WorkdirError, match=r"config.json: "):
        load_run_config(str(tmp_path))
    lines = []
    RunCheckpoints(str(tmp_path), cfg, restart=True, log=lines.append)
    assert any("discarding" in line for line in lines)
    assert not (tmp_path / "checkpoints" / "5").exists()
    assert load_run_config(str(tmp_path)) == cfg
