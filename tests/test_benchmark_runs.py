"""The benchmarks read a finished run back by its directory's name; a run of another config must not pass for it."""

from __future__ import annotations

import pytest

from fedkd_benchmarks.federated import refuse_other_config, settings_that_differ


def test_settings_that_differ_names_changed_values_and_ignores_settings_added_since() -> None:
    stored = {"aedm": {"steer": True, "sampling_steps": 4}, "run": {"seed": 0}}
    resolved = {"aedm": {"steer": False, "sampling_steps": 4, "learn_plain": False},
                "run": {"seed": 0, "device": "cpu"}}
    assert settings_that_differ(stored, resolved) == ["aedm.steer"]
    assert settings_that_differ(stored, stored) == []


def test_a_run_of_another_config_is_refused_in_one_line(tmp_path) -> None:
    (tmp_path / "config.toml").write_text("[aedm]\nsteer = true\n")
    with pytest.raises(SystemExit, match=r"aedm\.steer differ"):
        refuse_other_config(tmp_path, {"aedm": {"steer": False}})
    refuse_other_config(tmp_path, {"aedm": {"steer": True}})
