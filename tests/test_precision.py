"""``run.precision``: fp32 is the code as it was, bf16 is refused where it would mislead, and clients on a GPU
need a share of it (``federation.client_gpus``). What bf16 does on CUDA is checked in ``tests/test_gpu.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fedkd.config import load_config
from fedkd.errors import ConfigError
from fedkd.precision import autocast, check_precision
from fedkd_simulations.runner import require_client_gpus

ROOT = Path(__file__).resolve().parents[1]
CROWD = ROOT / "simulations" / "crowd_fedavg.toml"


def test_fp32_is_no_context_at_all() -> None:
    with autocast("fp32", "cpu") as inside:
        assert inside is None and not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.parametrize("path", sorted((ROOT / "simulations").glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_config_runs_in_fp32(path: Path) -> None:
    assert load_config(path).run.precision == "fp32"


def test_bf16_on_the_cpu_is_one_clear_error_from_the_config_and_from_the_library() -> None:
    with pytest.raises(ConfigError, match=r"^run.precision = 'bf16' needs a CUDA device, got run.device = 'cpu': "
                                          r".*'bf16' only with cuda or cuda:N$"):
        load_config(CROWD, {"run.precision": "bf16"})
    with pytest.raises(ConfigError, match=r"needs a CUDA device, got run.device = 'cpu'"):
        autocast("bf16", torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"--precision = 'bf16' needs a CUDA device, got --device = 'mps'"):
        check_precision("bf16", "mps", "--precision", "--device")


def test_bf16_loads_for_cuda_and_auto_and_an_unknown_precision_does_not() -> None:
    for device in ("cuda", "cuda:1", "auto"):
        assert load_config(CROWD, {"run.device": device, "run.precision": "bf16"}).run.precision == "bf16"
    with pytest.raises(ConfigError, match=r"run.precision = 'float16' is not a precision; choose one of "
                                          r"\['fp32', 'bf16'\]"):
        load_config(CROWD, {"run.precision": "float16"})


def test_clients_on_cuda_need_a_share_of_the_gpu() -> None:
    with pytest.raises(ConfigError, match=r"^federation.client_gpus must be > 0 when run.device = 'cuda:1' \(got 0.0\)"
                                          r": .* e.g. 0.1 for 10 clients on one GPU$"):
        require_client_gpus(load_config(CROWD, {"run.device": "cuda:1"}))
    require_client_gpus(load_config(CROWD, {"run.device": "cuda", "federation.client_gpus": 0.1}))
    require_client_gpus(load_config(CROWD, {"run.device": "cpu"}))
