"""``fedkd aggregate`` on a bundled crowd set: writes task,label, prints accuracy, fails with one clear line."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import fedkd.data.crowd as crowd
from fedkd.cli import main

SETS = Path(crowd.__file__).with_name("crowd_sets")


def _accuracy(text: str) -> float:
    match = re.search(r"accuracy on (\d+) gold tasks: ([0-9.]+)", text)
    assert match, text
    return float(match.group(2))


@pytest.mark.parametrize("method", ["mv", "ds", "bila"])
def test_online_aggregation_of_a_bundled_set_prints_accuracy(method, tmp_path, capsys):
    out = tmp_path / "truth.csv"
    args = [str(SETS / "dog" / "labels.csv"), "--method", method, "--n-classes", "4", "--chunk-size", "200",
            "--seed", "1", "--gold", str(SETS / "dog" / "gold.csv"), "--out", str(out)]
    assert main(["aggregate", *args]) == 0
    text = capsys.readouterr().out
    assert "online, 5 chunks of 200 tasks" in text
    assert 0.8 < _accuracy(text) < 0.9  # published range on dog: majority vote 81.8 %, Dawid-Skene 84.3 %
    written = pd.read_csv(out)
    assert list(written.columns) == ["task", "label"]
    assert len(written) == 807 and written["label"].between(0, 3).all()


def test_chunked_labels_are_the_ones_emitted_on_arrival(tmp_path, capsys):
    from fedkd.aggregation import DawidSkene
    from fedkd.data.crowd import chunk_tasks

    labels = crowd.load_crowd("rte").labels
    out = tmp_path / "truth.csv"
    assert main(["aggregate", str(SETS / "rte" / "labels.csv"), "--method", "ds", "--n-classes", "2",
                 "--chunk-size", "300", "--out", str(out)]) == 0
    ds = DawidSkene(2)
    expected = pd.concat([ds.partial_fit(c).predict(c) for c in chunk_tasks(labels, chunk_size=300)])
    written = pd.read_csv(out, dtype={"task": str}).set_index("task")["label"]
    assert written.equals(expected.rename("label"))


def test_offline_without_chunk_size(tmp_path, capsys):
    assert main(["aggregate", str(SETS / "rte" / "labels.csv"), "--method", "ds", "--n-classes", "2",
                 "--gold", str(SETS / "rte" / "gold.csv"), "--out", str(tmp_path / "o.csv")]) == 0
    text = capsys.readouterr().out
    assert "ds (offline)" in text and _accuracy(text) > 0.92


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("task,worker\n1,2\n", [], "missing column(s) label"),
        ("task,worker,label\n1,2,7\n", [], "outside the allowed range (in 0..1): 7"),
        ("task,worker,label\n1,2,1\n", ["--method", "magic"], "unknown aggregator 'magic'"),
        ("task,worker,label\n1,2,1\n", ["--chunk-size", "0"], "--chunk-size must be an integer in 1.."),
    ],
)
def test_user_errors_exit_2_with_one_line(content, extra, message, tmp_path, capsys):
    path = tmp_path / "labels.csv"
    path.write_text(content)
    code = main(["aggregate", str(path), "--n-classes", "2", "--out", str(tmp_path / "o.csv"), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("fedkd aggregate: error:") and message in err and len(err.strip().splitlines()) == 1
