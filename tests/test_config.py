"""Experiment configs: shipped files load, and every user mistake is named precisely."""

from pathlib import Path

import pytest

from fedkd.config import ExperimentConfig, load_config, parse_value
from fedkd.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CROWD_FEDAVG = ROOT / "simulations" / "crowd_fedavg.toml"


def test_crowd_fedavg_loads_typed_sections():
    cfg = load_config(CROWD_FEDAVG)
    assert cfg.run.kind == "federated"
    assert cfg.federation.num_clients == 10
    assert cfg.crowd.noise == (0.3, 0.4)
    assert isinstance(cfg.client.lr, float)


def test_overrides_from_cli_strings_and_dicts_agree():
    a = load_config(CROWD_FEDAVG, ["federation.num_clients=20", "crowd.noise=[0.1, 0.2]", "client.model=mlp"])
    b = load_config(CROWD_FEDAVG, {"federation.num_clients": 20, "crowd.noise": [0.1, 0.2], "client.model": "mlp"})
    assert a == b
    assert a.federation.num_clients == 20 and a.crowd.noise == (0.1, 0.2)


def test_round_trip_through_dict_and_replace():
    cfg = load_config(CROWD_FEDAVG)
    assert load_config(cfg.to_dict()) == cfg
    assert cfg.replace({"run.seed": 7}).run.seed == 7
    assert cfg.run.seed == 0
    assert cfg.flat()["federation.num_clients"] == 10


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("federation.num_clent=3", "federation.num_clent"),
        ("federation.num_clients=ten", "federation.num_clients must be an integer"),
        ("federation.partition=random", "choose one of ['iid', 'dirichlet', 'shards']"),
        ("federation.alpha=0", "federation.alpha must be > 0"),
        ("crowd.noise=[0.5, 0.2]", "crowd.noise"),
        ("crowd.noise=[0.1]", "crowd.noise must have 2 items"),
        ("crowd.labels_per_item=9", "crowd.labels_per_item"),
        ("client.local_epochs=true", "client.local_epochs must be an integer"),
        ("query.coverage_accuracy=1.5", "query.coverage_accuracy in (0, 1], got 30.0, 1.5"),
        ("federaton.num_clients=3", "unknown section(s) ['federaton']"),
        ("run.kind=nope", "run.kind = 'nope' is not an installed experiment kind"),
        ("num_clients", "must look like section.key=value"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(CROWD_FEDAVG, [override])
    assert message in str(err.value)


def test_missing_file_and_missing_run_section(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data]\ndataset = 'digits'\n")
    with pytest.raises(ConfigError, match=r"no \[run\] section"):
        load_config(bad)
    bad.write_text("[run\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_parse_value_falls_back_to_strings():
    assert parse_value("3") == 3
    assert parse_value("0.5") == 0.5
    assert parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("lenet5") == "lenet5"
    assert parse_value("'quoted'") == "quoted"


def test_config_object_passes_through_unchanged():
    cfg = load_config(CROWD_FEDAVG)
    assert load_config(cfg) is cfg
    assert isinstance(cfg, ExperimentConfig)
    with pytest.raises(AttributeError, match="no section 'nope'"):
        _ = cfg.nope


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.dataset=imagenet", "data.dataset = 'imagenet' is not registered"),
        ("client.model=gpt", "client.model = 'gpt' is not registered"),
        ("client.aggregator=vote", "client.aggregator = 'vote' is not registered"),
        ("federation.strategy=fedsomething", "federation.strategy = 'fedsomething' is not registered"),
    ],
)
def test_registry_names_are_checked_at_load_time(override, key):
    with pytest.raises(ConfigError, match="choose one of") as err:
        load_config(CROWD_FEDAVG, [override])
    assert key in str(err.value)
