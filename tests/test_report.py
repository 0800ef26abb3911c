"""The README's results come from benchmarks/results: ``benchmarks/report.py --check`` finds no drift, and
finds the drift a hand edit makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedkd_benchmarks import report

README = Path(report.README)


def test_readme_matches_the_results_files(capsys):
    assert report.main(["--check"]) == 0, capsys.readouterr().err


def test_a_number_typed_into_a_block_is_drift(tmp_path, capsys):
    text = README.read_text()
    start = text.index("<!-- report:federated -->")
    edited = text[:start] + text[start:].replace("0.805 ± 0.033", "0.905 ± 0.033", 1)
    assert edited != text
    (tmp_path / "README.md").write_text(edited)
    assert report.main(["--check", "--readme", str(tmp_path / "README.md")]) == 1
    assert "README block 'federated' differs" in capsys.readouterr().err
    assert report.main(["--readme", str(tmp_path / "README.md")]) == 0  # rewriting restores the results' numbers
    assert (tmp_path / "README.md").read_text() == text


def test_a_marker_without_a_renderer_is_an_error(tmp_path):
    (tmp_path / "README.md").write_text(README.read_text() + "\n<!-- report:nothing -->\nx\n<!-- /report:nothing -->\n")
    with pytest.raises(SystemExit, match="without a renderer \\['nothing'\\]"):
        report.main(["--check", "--readme", str(tmp_path / "README.md")])
