"""Every bad input is one clear line and costs nothing: the table of what users get wrong.

Each case builds a small folder, runs the real command line in-process (``fedkd.cli.main``) from inside
it, and asserts exit code 2, exactly one ``fedkd CMD: error: ...`` line naming the problem (a traceback
would escape ``main`` and fail the test), and that every file in the folder is byte for byte what it
was: nothing already written was lost, changed, or joined by a half-written file.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import fedkd.data.crowd as crowd
from fedkd.cli import main
from fedkd.config import load_config
from fedkd.runs import RunDir

ROOT = Path(__file__).resolve().parents[1]
CROWD_FEDAVG = str(ROOT / "simulations" / "crowd_fedavg.toml")
GOOD = "task,worker,label\n007,01,1\n7,1,0\n007,02,1\n"
GOLD = "task,true_label\n007,1\n7,0\n"


@dataclass(frozen=True)
class Case:
    argv: list[str]  # "{d}" stands for the case's folder
    message: str  # must appear in the one error line
    files: dict[str, str | bytes] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None


def aggregate(*extra: str, labels: str = "{d}/labels.csv", out: str = "{d}/out.csv") -> list[str]:
    return ["aggregate", labels, "--n-classes", "2", "--out", out, *extra]


def labels_case(body: str, message: str) -> Case:
    """A labels file whose rows after the header are ``body``, next to an earlier output that must survive."""
    return Case(aggregate(), message, {"labels.csv": "task,worker,label\n" + body, "out.csv": "task,label\nold,1\n"})


def existing_run(folder: Path) -> None:
    """A started run in ``folder/run`` with one logged round, as a run stopped after round 1 leaves it (released:
    the process that wrote it is gone)."""
    with RunDir.open(folder / "run", load_config(CROWD_FEDAVG)) as run:
        run.log("test_acc", 0.5, round=1)


CASES = {
    # --- fedkd aggregate: the labels file -----------------------------------------------------------------
    "label-bool-column": labels_case("1,a,True\n2,a,False\n", "found booleans"),
    "label-bool-mixed": labels_case("1,a,1\n2,a,True\n", "non-integer values 'True'"),
    "label-inf": labels_case("1,a,1\n2,a,inf\n", "non-integer values inf"),
    "label-minus-inf": labels_case("1,a,-inf\n", "non-integer values -inf"),
    "label-nan": labels_case("1,a,nan\n", "non-integer values 'nan'"),
    "label-fraction": labels_case("1,a,0\n2,b,1.5\n", "non-integer values 1.5"),
    "label-word": labels_case("1,a,cat\n", "non-integer values 'cat'"),
    "label-too-big": labels_case("1,a,7\n", "outside the allowed range (in 0..1): 7"),
    "label-negative": labels_case("1,a,-1\n", "outside the allowed range (in 0..1): -1"),
    "label-empty-cell": labels_case("1,a,\n", "empty values in column(s) label"),
    "task-empty-cell": labels_case(",a,1\n", "empty values in column(s) task"),
    "missing-column": Case(aggregate(), "missing column(s) label", {"labels.csv": "task,worker\n1,a\n"}),
    "header-only": Case(aggregate(), "has no rows", {"labels.csv": "task,worker,label\n"}),
    "empty-file": Case(aggregate(), "is empty", {"labels.csv": ""}),
    "not-utf8": Case(aggregate(), "is not UTF-8 text", {"labels.csv": b"task,worker,label\n\xff\xfe,a,1\n"}),
    "input-missing": Case(aggregate(labels="{d}/nope.csv"), "does not exist", {"out.csv": "keep\n"}),
    "input-directory": Case(aggregate(labels="{d}/sub"), "is a directory", {"sub/labels.csv": GOOD}),
    # --- fedkd aggregate: the gold file -------------------------------------------------------------------
    "gold-missing-column": Case(aggregate("--gold", "{d}/gold.csv"), "missing column(s) true_label",
                                {"labels.csv": GOOD, "gold.csv": "task,label\n007,1\n"}),
    "gold-out-of-range": Case(aggregate("--gold", "{d}/gold.csv"), "outside the allowed range (in 0..1): 4",
                              {"labels.csv": GOOD, "gold.csv": "task,true_label\n007,4\n"}),
    "gold-directory": Case(aggregate("--gold", "{d}"), "gold labels file", {"labels.csv": GOOD}),
    # --- fedkd aggregate: --out, checked before any work --------------------------------------------------
    "out-missing-folder": Case(aggregate(out="{d}/nofolder/out.csv"), "does not exist; create it first",
                               {"labels.csv": GOOD}),
    "out-under-a-file": Case(aggregate(out="{d}/labels.csv/out.csv"), "is not a folder", {"labels.csv": GOOD}),
    "out-is-directory": Case(aggregate(out="{d}/sub"), "is a directory", {"labels.csv": GOOD, "sub/x": "x"}),
    "out-is-input": Case(aggregate(out="{d}/labels.csv"), "is the labels file", {"labels.csv": GOOD}),
    "out-is-gold": Case(aggregate("--gold", "{d}/gold.csv", out="{d}/gold.csv"), "is the --gold file",
                        {"labels.csv": GOOD, "gold.csv": GOLD}),
    "out-links-to-input": Case(aggregate(out="{d}/link.csv"), "is the labels file", {"labels.csv": GOOD},
                               setup=lambda d: (d / "link.csv").symlink_to(d / "labels.csv")),
    # --- fedkd aggregate: numbers -------------------------------------------------------------------------
    "chunk-size-zero": Case(aggregate("--chunk-size", "0"), "--chunk-size must be an integer in 1..",
                            {"labels.csv": GOOD}),
    "chunk-size-past-int64": Case(aggregate("--chunk-size", str(2**63)), "--chunk-size must be an integer in 1..",
                                  {"labels.csv": GOOD}),
    "n-classes-one": Case(["aggregate", "{d}/labels.csv", "--n-classes", "1", "--out", "{d}/o.csv"],
                          "--n-classes must be an integer in 2..", {"labels.csv": GOOD}),
    "n-classes-past-int64": Case(["aggregate", "{d}/labels.csv", "--n-classes", str(2**64), "--out", "{d}/o.csv"],
                                 "--n-classes must be an integer in 2..", {"labels.csv": GOOD}),
    "threads-zero": Case(aggregate("--threads", "0"), "--threads must be in 1..", {"labels.csv": GOOD}),
    "unknown-method": Case(aggregate("--method", "magic"), "unknown aggregator 'magic'", {"labels.csv": GOOD}),
    # --- fedkd run: --out and --resume --------------------------------------------------------------------
    # (--out a file, or under a file: tests/test_bad_runs.py)
    "run-out-holds-a-run": Case(["run", CROWD_FEDAVG, "--out", "{d}/run"], "already holds a run",
                                setup=existing_run),
    "resume-changed-config": Case(["run", CROWD_FEDAVG, "--out", "{d}/run", "--resume", "--set",
                                   "federation.num_rounds=7"], "config differs", setup=existing_run),
    "resume-no-run": Case(["run", CROWD_FEDAVG, "--out", "{d}", "--resume"], "holds no run", {"notes.txt": "x"}),
    "resume-without-out": Case(["run", CROWD_FEDAVG, "--resume"], "--resume needs --out"),
    # --- fedkd run: the config ----------------------------------------------------------------------------
    "config-missing": Case(["run", "{d}/nope.toml"], "does not exist"),
    "config-unknown-key": Case(["run", CROWD_FEDAVG, "--set", "federation.num_clent=3"],
                               "unknown key(s) ['federation.num_clent']"),
    "config-wrong-type": Case(["run", CROWD_FEDAVG, "--set", "federation.num_rounds=abc"],
                              "federation.num_rounds must be an integer"),
    "config-override-without-equals": Case(["run", CROWD_FEDAVG, "--set", "federation.num_rounds"],
                                           "must look like section.key=value"),
    "config-budget-below-one-iteration": Case(["run", str(ROOT / "simulations" / "tandemgan_digits28.toml"),
                                               "--set", "distill.budget=1000", "--out", "{d}/run"], "distill.budget"),
    "config-device-tpu": Case(["run", CROWD_FEDAVG, "--set", "run.device=tpu", "--out", "{d}/run"], "run.device"),
}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", [pytest.param(c, id=k) for k, c in CASES.items()])
def test_bad_input_is_one_line_and_loses_nothing(case, tmp_path, capsys, monkeypatch):
    for name, content in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    if case.setup is not None:
        case.setup(tmp_path)
    before = _snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)  # a default runs/ folder would show up in the snapshot
    capsys.readouterr()
    code = main([arg.replace("{d}", str(tmp_path)) for arg in case.argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"fedkd {case.argv[0]}: error: ") and case.message in err[0], err[0]
    assert _snapshot(tmp_path) == before


def test_the_table_is_at_least_thirty_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("argv", [
    ["aggregate", "labels.csv", "--n-classes", "2", "--out", "labels.csv"],
    ["run", CROWD_FEDAVG, "--out", "labels.csv"],
], ids=["aggregate", "run"])
def test_the_installed_command_prints_one_line_and_nothing_else(argv, tmp_path):
    """What a shell user sees: one stderr line and nothing on stdout, from the real entry point."""
    (tmp_path / "labels.csv").write_text(GOOD)
    done = subprocess.run([sys.executable, "-m", "fedkd.cli", *argv], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert (tmp_path / "labels.csv").read_text() == GOOD


def test_numeric_looking_ids_stay_distinct(tmp_path):
    """``007`` and ``7`` are two tasks and ``01`` and ``1`` two workers: ids are strings, as written."""
    (tmp_path / "labels.csv").write_text(GOOD)
    assert main(aggregate("--method", "mv", labels=str(tmp_path / "labels.csv"), out=str(tmp_path / "o.csv"))) == 0
    assert (tmp_path / "o.csv").read_text() == "task,label\n007,1\n7,0\n"
    labels = crowd.read_crowd_csv(tmp_path / "labels.csv")
    assert labels["task"].tolist() == ["007", "7", "007"] and labels["worker"].nunique() == 3
