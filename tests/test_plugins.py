"""Strategy plug-ins: a package installed with pip becomes usable by name in a config."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fedkd.config import load_config
from fedkd.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "tests" / "plugins" / "fedkd_median_plugin"


def test_unknown_strategy_lists_the_installed_ones():
    with pytest.raises(ConfigError, match=r"choose one of \[.*'fedavg'.*\]"):
        load_config(ROOT / "simulations" / "crowd_fedavg.toml", {"federation.strategy": "fedmedian"})


@pytest.mark.slow
def test_installed_plugin_runs_by_name(tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(PLUGIN),
        ],
        check=True,
        capture_output=True,
    )
    script = textwrap.dedent(
        f"""
        import fedkd
        from fedkd_strategies.registry import available_strategies
        assert "fedmedian" in available_strategies(), available_strategies()
        result = fedkd.run(
            {str(ROOT / "simulations" / "crowd_fedavg.toml")!r},
            overrides={{"federation.strategy": "fedmedian", "federation.num_clients": 3, "federation.num_rounds": 2,
                       "data.dataset": "digits", "client.model": "mlp", "federation.partition": "iid"}},
            out={str(tmp_path / "run")!r},
        )
        print("ACC", result.final("test_acc"))
        """
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CI": "1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    accuracy = float(out.stdout.split("ACC")[-1])
    assert accuracy > 0.5  # 10 classes; the median of 3 clients' weights still learns
