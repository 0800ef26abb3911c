"""The Flower apps deployed as separate processes on loopback: SuperLink and SuperNodes with TLS and
SuperNode authentication, driven by ``scripts/deploy_local.py`` exactly as a user runs it."""

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fedkd.config import load_config
from fedkd.federation.plain import run_plain_fedavg

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "deploy_local.py"
CROWD_FEDAVG = ROOT / "simulations" / "crowd_fedavg.toml"
NODES = 2
ROUNDS = 2


def _script_module():
    spec = importlib.util.spec_from_file_location("deploy_local", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _run_script(workdir: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run the script; past ``timeout`` it gets SIGTERM (it then stops what it started) before a kill."""
    argv = [sys.executable, str(SCRIPT), "--nodes", str(NODES), "--rounds", str(ROUNDS), "--probe-unregistered"]
    argv += ["--workdir", str(workdir), "--timeout", "150"]  # per step; the suite runs beside it on the same cores
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            pytest.fail(f"deploy_local.py took over {timeout:.0f} s:\n{out}")
    return subprocess.CompletedProcess(argv, proc.returncode, out)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the script finds its processes through /proc")
def test_tls_deployment_with_registered_nodes_learns_refuses_strangers_and_leaves_nothing_running(tmp_path):
    deploy_local = _script_module()
    work = tmp_path.resolve()
    try:
        result = _run_script(work, timeout=280)
    finally:
        leftovers = deploy_local.processes_in(work)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
    assert result.returncode == 0, result.stdout
    assert not leftovers, f"processes left running: {leftovers}"

    metrics = pd.read_csv(work / "run" / "metrics.csv")
    server = metrics[metrics["client"].isna()]
    test_acc = server[server["metric"] == "test_acc"].set_index("round")["value"]
    assert list(test_acc.index) == list(range(ROUNDS + 1))
    assert (test_acc.loc[1:] > 0.5).all(), test_acc  # 10 digit classes: chance is 0.1
    # Separate processes, TLS and signed messages change nothing: the same rounds in one plain loop agree.
    cfg = load_config(
        CROWD_FEDAVG, [*deploy_local.SHORT_JOB, f"federation.num_clients={NODES}", f"federation.num_rounds={ROUNDS}"]
    )
    assert test_acc.loc[ROUNDS] == pytest.approx(run_plain_fedavg(cfg).test_acc[-1], abs=1e-9)
    clients = metrics[metrics["client"].notna()]
    assert set(clients["client"].astype(int)) == set(range(NODES))  # every partition-id took part
    assert (work / "run" / "config.toml").is_file() and (work / "run" / "manifest.json").is_file()

    logs = work / "logs"
    superlink = (logs / "superlink.log").read_text()
    assert "Uvicorn running on https://127.0.0.1" in superlink  # TLS on the SuperLink's one port
    assert "No SuperNode found with the given public key" in superlink  # the stranger was turned away...
    assert deploy_local.REFUSAL in (logs / "stranger.log").read_text()  # ...and gave up
    assert "unregistered SuperNode refused: yes" in result.stdout
    assert f"final test_acc (round {ROUNDS})" in result.stdout
