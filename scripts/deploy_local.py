#!/usr/bin/env python
"""Deploy fedkd's Flower apps on loopback as separate processes: one SuperLink, N SuperNodes, TLS and
SuperNode authentication on; run a short job, report it, and stop every process started.

It is a multi-machine deployment in miniature, so the path a real federation takes (certificates, registered
node keys, ``flwr run`` against a remote SuperLink) is exercised end to end on one box:

1. a throwaway CA and a server certificate for ``127.0.0.1``/``localhost`` (``cryptography``, a Flower
   dependency), and one ECDSA P-384 key pair per SuperNode in OpenSSH format (what Flower 1.41 and 1.42 load);
2. ``flower-superlink`` with ``--ssl-*`` and ``--enable-supernode-auth`` on a free port (Flower 1.41 and 1.42 serve
   its Control, Fleet and Runtime APIs on one HTTPS port);
3. each node's public key registered with ``flwr supernode register`` (Control API, over TLS);
4. ``flower-supernode --auth-supernode-private-key KEY --node-config "partition-id=i num-partitions=N"`` per
   node, each with its own ``FLWR_HOME`` as if on its own machine (its local Runtime API on TLS too);
5. ``flwr run . <connection> --stream`` with the experiment as run config; ``metrics.csv`` is read back.

``--probe-unregistered`` also starts a SuperNode whose key was never registered and checks it is refused.

    .venv/bin/python scripts/deploy_local.py --nodes 3 --rounds 2 --probe-unregistered
"""

from __future__ import annotations

import argparse
import csv
import datetime
import ipaddress
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
CONNECTION = "fedkd-local"
REFUSAL = "Failed to initialize the connection to the SuperLink"
QUIET_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "PYTHONUNBUFFERED": "1",
}
SHORT_JOB = ("data.dataset=digits", "client.model=mlp")  # 8x8 digits and an MLP: seconds per round on a CPU
STARTED = time.monotonic()


class DeploymentError(RuntimeError):
    """A step of the local deployment failed; the message names the step and the log to read."""


@dataclass(frozen=True)
class Tls:
    ca_cert: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True)
class SuperLink:
    address: str
    tls: Tls
    cli_env: dict[str, str]  # environment for `flwr` commands: FLWR_HOME holds the connection to this SuperLink


@dataclass(frozen=True)
class Outcome:
    run_dir: Path
    test_acc: dict[int, float]  # round -> the server's test accuracy (round 0: before training)
    seconds: float
    unregistered_refused: bool | None  # None when not probed


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f} s] {message}", flush=True)


# --- processes ---------------------------------------------------------------------------------------------


@dataclass
class Processes:
    """Every process this script starts; ``stop_all`` ends them and whatever Flower spawned below them.

    Flower's processes spawn helpers (``flower-superexec``, ``flwr-serverapp``, ``flwr-clientapp``), some in
    a session of their own, so helpers are found both as descendants and by the ``FLWR_HOME`` they inherit,
    which always lies inside ``workdir``; only those process ids are signalled.
    """

    workdir: Path
    started: list[subprocess.Popen] = field(default_factory=list)

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started.append(proc)
        return proc

    def stop_all(self, grace: float = 10.0) -> None:
        """SIGTERM to all of ours, SIGKILL to any still running after ``grace`` seconds, then reap."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.running():
                _signal(pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self.running():
                time.sleep(0.2)
        for proc in self.started:
            proc.wait(timeout=grace)
        self.started.clear()

    def running(self) -> set[int]:
        # Looked up afresh each time, so a process id is only signalled while it is still one of ours.
        below = {pid for proc in self.started if proc.poll() is None for pid in descendants(proc.pid)}
        return {pid for pid in below if _running(pid)} | set(processes_in(self.workdir))


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def processes_in(workdir: Path) -> list[int]:
    """Live processes whose ``FLWR_HOME`` lies inside ``workdir``: the ones a deployment there started."""
    marker = f"FLWR_HOME={workdir}{os.sep}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            variables = environ.read_bytes().split(b"\0")
        except OSError:  # gone, or another user's
            continue
        if any(v.startswith(marker) for v in variables) and _running(int(environ.parent.name)):
            found.append(int(environ.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # an exited child stays a zombie until its parent waits; it counts as gone


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


# --- credentials -------------------------------------------------------------------------------------------


def write_tls(folder: Path) -> Tls:
    """A throwaway CA and a server certificate it signs, valid one day for 127.0.0.1 and localhost only."""

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        certificate("fedkd local CA", ca_key, name("fedkd local CA"))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    loopback = [x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]
    server_cert = (
        certificate(LOOPBACK, server_key, ca_cert.subject)
        .add_extension(x509.SubjectAlternativeName(loopback), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    tls = Tls(folder / "ca.crt", folder / "server.pem", folder / "server.key")
    tls.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    tls.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    tls.server_key.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    tls.server_key.chmod(0o600)
    return tls


def write_node_key(path: Path) -> Path:
    """An ECDSA P-384 key pair in OpenSSH format, ``path`` and ``path.pub`` (what ``ssh-keygen -t ecdsa -b 384``
    writes): the SuperNode signs its requests with the private key; the SuperLink is told the public one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    )
    path.chmod(0o600)
    public = path.with_name(path.name + ".pub")
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    return public


# --- Flower commands ---------------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on now (the kernel picks it; the short race is acceptable here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def flower_env(home: Path) -> dict[str, str]:
    """The environment of one Flower process: quiet, offline, its own ``FLWR_HOME``, this venv's tools first."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        **QUIET_ENV,
        "FLWR_HOME": str(home),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def flwr(args: list[str], env: dict[str, str], timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "flwr"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def wait_for(
    check: Callable[[], bool], timeout: float, what: str, logs: Path, needed: Sequence[subprocess.Popen]
) -> None:
    """Poll ``check`` until it holds; fail at once if a ``needed`` process exits, else after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if exited := [proc for proc in needed if proc.poll() is not None]:
            raise DeploymentError(
                f"{Path(exited[0].args[0]).name} exited with code {exited[0].returncode} while waiting for "
                f"{what}; see the logs in {logs}"
            )
        if time.monotonic() > deadline:
            raise DeploymentError(f"timed out after {timeout:.0f} s waiting for {what}; see the logs in {logs}")
        time.sleep(1.0)


def start_superlink(work: Path, processes: Processes, timeout: float) -> SuperLink:
    """A SuperLink with TLS and SuperNode authentication, and a ``flwr`` connection to it over TLS."""
    tls = write_tls(work / "certs")
    port = free_port()
    address = f"{LOOPBACK}:{port}"
    cli_home = work / "cli-home"
    cli_env = flower_env(cli_home)
    # Flower 1.41 and 1.42 keep the CLI's SuperLink connections in $FLWR_HOME/config.toml.
    (cli_home / "config.toml").write_text(
        f'[superlink]\ndefault = "{CONNECTION}"\n\n'
        f'[superlink.{CONNECTION}]\naddress = "{address}"\nroot-certificates = "{tls.ca_cert}"\n',
        encoding="utf-8",
    )
    argv = [
        str(BIN / "flower-superlink"),
        *("--ssl-ca-certfile", str(tls.ca_cert), "--ssl-certfile", str(tls.server_cert)),
        *("--ssl-keyfile", str(tls.server_key)),
        "--enable-supernode-auth",
        "--disable-runtime-dependency-installation",
        *("--host", LOOPBACK, "--port", str(port)),
    ]
    proc = processes.start(argv, flower_env(work / "superlink-home"), work / "logs" / "superlink.log")
    link = SuperLink(address, tls, cli_env)
    wait_for(lambda: list_nodes(link) is not None, timeout, f"the SuperLink on {address}", work / "logs", [proc])
    return link


def flwr_json(args: list[str], link: SuperLink) -> dict | None:
    """``flwr <args> <connection> --format json`` against ``link``: its reply, or None when it did not succeed."""
    result = flwr([*args, CONNECTION, "--format", "json"], link.cli_env)
    try:
        reply = json.loads(result.stdout)
    except json.JSONDecodeError:
        return None
    return reply if result.returncode == 0 and reply.get("success") else None


def list_nodes(link: SuperLink) -> list[dict] | None:
    """The SuperNodes the SuperLink knows, as ``flwr supernode list`` reports them; None if it is unreachable."""
    reply = flwr_json(["supernode", "list"], link)
    return None if reply is None else reply["nodes"]


def register(public_key: Path, link: SuperLink) -> None:
    """Tell the SuperLink (Control API) that the SuperNode holding this key's private half may join."""
    if flwr_json(["supernode", "register", str(public_key)], link) is None:
        raise DeploymentError(f"registering {public_key} with the SuperLink at {link.address} failed")


def start_supernode(
    work: Path, processes: Processes, name: str, link: SuperLink, node_config: str
) -> tuple[subprocess.Popen, Path]:
    """A SuperNode authenticated by the private key ``work/keys/<name>``; returns it and its log file."""
    log = work / "logs" / f"{name}.log"
    argv = [
        str(BIN / "flower-supernode"),
        *("--superlink", link.address, "--root-certificates", str(link.tls.ca_cert)),
        *("--auth-supernode-private-key", str(work / "keys" / name)),
        *("--node-config", node_config),
        # The node's own Runtime API (used by its SuperExec and ClientApp processes) on loopback, with TLS too.
        *("--host", LOOPBACK, "--port", str(free_port())),
        *("--ssl-certfile", str(link.tls.server_cert), "--ssl-keyfile", str(link.tls.server_key)),
        *("--ssl-ca-certfile", str(link.tls.ca_cert)),
        *("--max-retries", "3"),
    ]
    return processes.start(argv, flower_env(work / name / "flwr-home"), log), log


def read_test_acc(run_dir: Path) -> dict[int, float]:
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = csv.DictReader(f)
        return {int(r["round"]): float(r["value"]) for r in rows if r["metric"] == "test_acc" and not r["client"]}


# --- the deployment ----------------------------------------------------------------------------------------


def deploy(
    work: Path,
    nodes: int,
    rounds: int,
    experiment: str = "crowd_fedavg",
    overrides: Sequence[str] = SHORT_JOB,
    timeout: float = 300.0,
    probe: bool = False,
) -> Outcome:
    """Run ``rounds`` rounds of ``experiment`` with ``overrides`` (``section.key=value``) on a fresh local
    deployment of ``nodes`` SuperNodes; certificates, keys, logs and the run directory go to ``work``.

    Every step is bounded by ``timeout`` seconds; every process is stopped before this returns or raises.
    """
    start = time.monotonic()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    processes = Processes(work)
    try:
        link = start_superlink(work, processes, timeout)
        say(f"SuperLink on https://{link.address} (TLS; SuperNode authentication on)")
        if probe:
            write_node_key(work / "keys" / "stranger")
            stranger = start_supernode(work, processes, "stranger", link, "partition-id=0 num-partitions=1")
        start_registered_nodes(work, processes, link, nodes, timeout)
        refused = None
        if probe:
            refused = _refused(*stranger, timeout)
            say(f"SuperNode with an unregistered key: {'refused' if refused else 'NOT refused'}")
        job = [f"federation.num_clients={nodes}", f"federation.num_rounds={rounds}", *overrides]
        run_dir = run_job(work, link, experiment, job, timeout)
        test_acc = read_test_acc(run_dir)
        if max(test_acc, default=0) < rounds:
            raise DeploymentError(f"the run stopped after round {max(test_acc, default=0)}; see {work / 'logs'}")
        return Outcome(run_dir, test_acc, time.monotonic() - start, refused)
    finally:
        processes.stop_all()
        say("stopped every process started")


def start_registered_nodes(work: Path, processes: Processes, link: SuperLink, nodes: int, timeout: float) -> None:
    """Register ``nodes`` fresh keys with the SuperLink, start a SuperNode on each, wait until all are online."""
    names = [f"node-{i}" for i in range(nodes)]
    for name in names:
        register(write_node_key(work / "keys" / name), link)
    say(f"registered the public keys of {', '.join(names)}")
    started = [
        start_supernode(work, processes, name, link, f"partition-id={i} num-partitions={nodes}")[0]
        for i, name in enumerate(names)
    ]
    wait_for(lambda: _online(link) >= nodes, timeout, f"{nodes} SuperNodes online", work / "logs", started)
    say(f"{nodes} SuperNodes online")


def run_job(work: Path, link: SuperLink, experiment: str, overrides: Sequence[str], timeout: float) -> Path:
    """``flwr run`` the project's app on ``link`` and wait for it to finish; returns the run directory."""
    run_dir = work / "run"
    run_config = work / "run_config.toml"
    # A TOML file rather than --run-config "k=v ...", so overrides reach the ServerApp with their quoting intact.
    run_config.write_text(
        tomli_w.dumps({"experiment": experiment, "overrides": shlex.join(overrides), "out": str(run_dir)})
    )
    say(f"flwr run . {CONNECTION} --run-config {run_config}")
    with open(work / "logs" / "flwr-run.log", "w") as log:
        result = subprocess.run(
            [str(BIN / "flwr"), "run", ".", CONNECTION, "--stream", "--run-config", str(run_config)],
            env=link.cli_env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    if result.returncode != 0 or not (run_dir / "metrics.csv").is_file():
        raise DeploymentError(
            f"the run wrote no {run_dir / 'metrics.csv'} (flwr exit code {result.returncode}); the ServerApp's "
            f"output is in {work / 'logs' / 'flwr-run.log'}"
        )
    return run_dir


def _refused(proc: subprocess.Popen, log: Path, timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode != 0 and REFUSAL in log.read_text(errors="replace")


def _online(link: SuperLink) -> int:
    return sum(node["status"] == "online" for node in list_nodes(link) or [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3, help="SuperNodes to start (= federation.num_clients)")
    parser.add_argument("--rounds", type=int, default=2, help="federation.num_rounds (default: %(default)s)")
    parser.add_argument("--experiment", default="crowd_fedavg", help="name under simulations/ or a TOML path")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value, after the short job's {' '.join(SHORT_JOB)} (repeatable)",
    )
    parser.add_argument("--workdir", type=Path, help="certificates, keys, logs and the run directory (default: temp)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per step (default: %(default)s)")
    parser.add_argument(
        "--probe-unregistered", action="store_true", help="also check that a SuperNode with an unknown key is refused"
    )
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.rounds < 1:
        parser.error(f"--nodes ({args.nodes}) and --rounds ({args.rounds}) must be at least 1")
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="fedkd-deploy-"))).resolve()
    # The ServerApp runs in another process and directory: a config given as a path must be absolute.
    experiment = str(Path(args.experiment).resolve()) if Path(args.experiment).suffix else args.experiment
    # `kill` (SIGTERM) unwinds like Ctrl-C, so the processes started are stopped either way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        outcome = deploy(
            work, args.nodes, args.rounds, experiment, [*SHORT_JOB, *args.set], args.timeout, args.probe_unregistered
        )
    except (DeploymentError, subprocess.TimeoutExpired) as err:
        print(f"deploy_local: error: {err}", file=sys.stderr)
        return 1
    last = max(outcome.test_acc)
    print(f"run directory: {outcome.run_dir}")
    print(f"final test_acc (round {last}): {outcome.test_acc[last]:.4f}")
    if outcome.unregistered_refused is not None:
        print(f"unregistered SuperNode refused: {'yes' if outcome.unregistered_refused else 'NO'}")
    print(f"wall time: {outcome.seconds:.0f} s; logs: {work / 'logs'}")
    return 0 if outcome.unregistered_refused is not False else 1


if __name__ == "__main__":
    sys.exit(main())
