"""The stop flag and device names, without a run: what a signal turns into and what ``run.device`` may say."""

from __future__ import annotations

import signal

import pytest
import torch

from fedkd.devices import check_device_name, resolve_device
from fedkd.errors import ConfigError
from fedkd.stopping import RunInterrupted, check_stop, clear_stop, interruption


@pytest.fixture(autouse=True)
def stop_flag():
    clear_stop()
    yield
    clear_stop()  # the flag is process-wide: leave it clear for the tests that follow


def test_ray_turning_sigterm_into_sys_exit_is_still_an_interruption() -> None:
    stopped = interruption(SystemExit(signal.SIGTERM))  # Ray's driver handler: sys.exit(signum)
    assert isinstance(stopped, RunInterrupted) and stopped.exit_code == 143
    with pytest.raises(RunInterrupted, match="interrupted by SIGTERM"):
        check_stop()  # and every loop of the run now stops


def test_other_exits_and_errors_are_not_interruptions() -> None:
    assert interruption(SystemExit(1)) is None and interruption(ValueError("bug")) is None
    check_stop()


def test_ctrl_c_is_an_interruption_with_exit_code_130() -> None:
    assert interruption(KeyboardInterrupt()).exit_code == 130


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:0", "cuda:12", "mps", "auto"])
def test_device_names_that_a_config_may_give(name: str) -> None:
    check_device_name(name)


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:", "cuda:x", "tpu", "cpu "])
def test_misspelt_devices_are_errors(name: str) -> None:
    with pytest.raises(ConfigError, match="is not a device name; choose one of"):
        check_device_name(name)


def test_auto_is_cuda_when_present_else_cpu() -> None:
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
