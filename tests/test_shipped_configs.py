"""The shipped experiment configs load, and the federated ones share one federation so they compare directly."""

from pathlib import Path

import pytest

from fedkd.config import load_config

SIMULATIONS = Path(__file__).resolve().parent.parent / "simulations"
FEDERATED = ["fed_avg", "fed_tandem", "fed_aedm", "fed_df", "quickstart"]


@pytest.mark.parametrize("path", sorted(SIMULATIONS.glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_config_is_valid_and_names_its_runs_after_itself(path):
    """Default run directories are ``runs/<run.name>-<time>``: a config copied without renaming would mix its
    runs with another's, so each shipped config's name is its file name."""
    cfg = load_config(path)
    assert cfg.run.name == path.stem.replace("_", "-")


def test_federated_configs_share_their_default_federation():
    configs = {name: load_config(SIMULATIONS / f"{name}.toml").to_dict() for name in FEDERATED}
    reference = configs[FEDERATED[0]]
    for name, cfg in configs.items():
        for section in ("data", "crowd", "client"):
            assert cfg[section] == reference[section], f"{name}.{section} differs from {FEDERATED[0]}"
        fed = {k: v for k, v in cfg["federation"].items() if k != "strategy"}
        assert fed == {k: v for k, v in reference["federation"].items() if k != "strategy"}, name
        assert cfg["federation"]["alpha"] == 0.1 and cfg["federation"]["num_clients"] == 10


def test_the_one_shot_tandem_config_is_the_run_the_benchmark_reports():
    """``benchmarks/oneshot.py`` runs ``fedtandem`` as ``oneshot.toml`` with that strategy's settings; the shipped
    ``oneshot_tandem.toml`` must be that same run, so the README's one-shot ``fedtandem`` rows are its numbers."""
    from fedkd_benchmarks.oneshot import STRATEGIES

    shipped = load_config(SIMULATIONS / "oneshot_tandem.toml").to_dict()
    benchmark = load_config(SIMULATIONS / "oneshot.toml", STRATEGIES["fedtandem"]).to_dict()
    for cfg in (shipped, benchmark):
        cfg["run"].pop("name")
        cfg.pop("aedm")  # the query source of oneshot.toml, which a TandemGAN run never reads
    assert shipped == benchmark
