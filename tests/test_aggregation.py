"""Label aggregators: the shared interface, recovery of known confusions, online guarantees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fedkd.aggregation import AGGREGATORS, BILA, DawidSkene, MajorityVote, build_aggregator, predict_online
from fedkd.data.crowd import chunk_tasks, gold_accuracy, make_confusions, simulate_bimodal_crowd, simulate_labels
from fedkd.errors import ConfigError, DataError

METHODS = sorted({cls.name for cls in AGGREGATORS.values()})


def _crowd(n_tasks=3000, n_workers=8, n_classes=3, noise=(0.1, 0.5), kind="uniform", labels_per_item=5, seed=0):
    rng = np.random.default_rng(seed)
    conf = make_confusions(n_workers, n_classes, kind, noise, rng)
    truth = rng.integers(0, n_classes, size=n_tasks)
    return simulate_labels(truth, conf, labels_per_item, rng), truth, conf


def _online(agg, df, n_chunks):
    return pd.concat([agg.partial_fit(chunk).predict(chunk) for chunk in chunk_tasks(df, n_chunks=n_chunks)])


def test_majority_vote_example_and_probabilities():
    df = pd.DataFrame({"task": ["x"] * 3 + ["y"] * 3, "worker": ["a", "b", "c"] * 2, "label": [1, 1, 0, 2, 2, 2]})
    mv = MajorityVote(n_classes=3)
    assert mv.fit_predict(df).to_dict() == {"x": 1, "y": 2}
    np.testing.assert_allclose(mv.predict_proba(df).loc["x"], [1 / 3, 2 / 3, 0])


def test_majority_vote_ties_are_seeded_and_chunking_independent():
    tasks = np.repeat(np.arange(400), 2)
    df = pd.DataFrame({"task": tasks, "worker": np.tile([0, 1], 400), "label": np.tile([0, 1], 400)})
    first = MajorityVote(2, seed=1).fit_predict(df)
    assert first.equals(MajorityVote(2, seed=1).fit_predict(df))
    assert first.equals(_online(MajorityVote(2, seed=1), df, n_chunks=7))
    assert 150 < first.sum() < 250  # every task is a tie: about half go each way
    assert not first.equals(MajorityVote(2, seed=2).fit_predict(df))


def test_majority_vote_reliability_breaks_ties_towards_the_trusted_worker():
    history = pd.DataFrame({"task": np.repeat([0, 1, 2], 3), "worker": ["good", "bad", "x"] * 3,
                            "label": [0, 1, 0, 1, 0, 1, 2, 0, 2]})
    tie = pd.DataFrame({"task": [9, 9], "worker": ["good", "bad"], "label": [2, 1]})
    mv = MajorityVote(3, tie_break="reliability").partial_fit(history)
    assert mv.partial_fit(tie).predict(tie).loc[9] == 2


def test_registry_builds_by_name_and_lists_names_on_error():
    assert isinstance(build_aggregator("mv", 4, seed=3), MajorityVote)
    with pytest.raises(ConfigError, match="unknown aggregator 'em'.*mv"):
        build_aggregator("em", 3)
    with pytest.raises(ConfigError, match="n_classes"):
        build_aggregator("mv", 1)


@pytest.mark.parametrize("method", METHODS)
def test_invalid_chunks_raise_clear_errors(method):
    agg = build_aggregator(method, 3)
    with pytest.raises(DataError, match="missing column.*label"):
        agg.partial_fit(pd.DataFrame({"task": [1], "worker": [1]}))
    with pytest.raises(DataError, match="outside the allowed range.*0..2"):
        agg.partial_fit(pd.DataFrame({"task": [1], "worker": [1], "label": [5]}))
    with pytest.raises(DataError, match="no rows"):
        agg.partial_fit(pd.DataFrame({"task": [], "worker": [], "label": []}))
    with pytest.raises(DataError, match="non-integer"):
        agg.partial_fit(pd.DataFrame({"task": [1], "worker": [1], "label": [0.5]}))


@pytest.mark.parametrize("method", METHODS)
def test_state_round_trip_gives_identical_later_results(method):
    df, _, _ = _crowd(n_tasks=600, seed=4)
    chunks = chunk_tasks(df, n_chunks=3)
    original = build_aggregator(method, 3, seed=7).partial_fit(chunks[0])
    state = original.state_dict()
    for key, value in state.items():
        assert isinstance(value, (np.ndarray, int, float, str, list)), key
    restored = build_aggregator(method, 3, seed=0)
    restored.load_state_dict(state)
    for chunk in chunks[1:]:
        pd.testing.assert_frame_equal(original.partial_fit(chunk).predict_proba(chunk),
                                      restored.partial_fit(chunk).predict_proba(chunk))
        assert original.predict(chunk).equals(restored.predict(chunk))


@pytest.mark.parametrize("method", METHODS)
def test_duplicate_rows_warn_and_keep_the_last(method):
    df = pd.DataFrame({"task": [1, 1, 1, 1], "worker": ["a", "b", "c", "a"], "label": [0, 1, 1, 1]})
    with pytest.warns(UserWarning, match="duplicate"):
        agg = build_aggregator(method, 2).partial_fit(df)
    with pytest.warns(UserWarning, match="duplicate"):
        assert agg.predict(df).loc[1] == 1


@pytest.mark.parametrize(("method", "max_err", "mean_err"),
                         [("mv", 0.12, 0.03), ("ds", 0.07, 0.015), ("bila", 0.07, 0.025)])
def test_online_aggregators_recover_known_confusions(method, max_err, mean_err):
    df, _, conf = _crowd(n_tasks=3000, kind="class_dependent", noise=(0.1, 0.45))
    agg = build_aggregator(method, 3, seed=0)
    list(predict_online(agg, chunk_tasks(df, n_chunks=5)))
    estimated = np.stack([agg.worker_confusions()[k] for k in range(8)])
    np.testing.assert_allclose(estimated.sum(axis=2), 1.0, rtol=1e-6)
    assert np.abs(estimated - conf).max() < max_err
    assert np.abs(estimated - conf).mean() < mean_err


def test_offline_dawid_skene_recovers_confusions_and_beats_majority_vote():
    df, truth, conf = _crowd(n_tasks=3000, kind="pair_flip", noise=(0.2, 0.45), labels_per_item=3, seed=2)
    ds = DawidSkene(3).fit(df)
    estimated = np.stack([ds.worker_confusions()[k] for k in range(8)])
    assert np.abs(estimated - conf).max() < 0.07
    ds_acc = (ds.predict(df).sort_index().to_numpy() == truth).mean()
    mv_acc = (MajorityVote(3).fit_predict(df).sort_index().to_numpy() == truth).mean()
    assert ds_acc > mv_acc + 0.03


def test_bila_beats_majority_vote_on_the_small_bimodal_crowd():
    labels, gold, _ = simulate_bimodal_crowd(n_tasks=2000, seed=1)
    chunks = chunk_tasks(labels, n_chunks=5)
    bila_err = 1 - gold_accuracy(pd.concat(predict_online(BILA(10, seed=0), chunks)), gold)[0]
    mv_err = 1 - gold_accuracy(MajorityVote(10).fit_predict(labels), gold)[0]
    assert mv_err >= 0.004  # 8 or more of the 2000 tasks: the poor half of the crowd does outvote the truth
    assert bila_err <= 0.6 * mv_err


def test_bila_never_keeps_earlier_chunks():
    """Emitted labels are final and later chunks see earlier ones only through the per-worker state:
    wiping an earlier chunk after it was fitted changes nothing, and the state does not grow with tasks."""
    df, _, _ = _crowd(n_tasks=900, seed=5)
    chunks = [c.copy() for c in chunk_tasks(df, n_chunks=3)]
    reference = BILA(3, seed=1)
    expected = [reference.partial_fit(c).predict(c) for c in chunks]

    agg = BILA(3, seed=1)
    first = agg.partial_fit(chunks[0]).predict(chunks[0])
    shapes = {k: np.shape(v) for k, v in agg.state_dict().items() if isinstance(v, np.ndarray)}
    chunks[0]["label"] = 0  # an aggregator that kept a reference to the old rows would now see other labels
    later = [agg.partial_fit(c).predict(c) for c in chunks[1:]]
    assert first.equals(expected[0])
    for got, want in zip(later, expected[1:], strict=False):
        assert got.equals(want)
    assert {k: np.shape(v) for k, v in agg.state_dict().items() if isinstance(v, np.ndarray)} == shapes


def test_new_workers_in_a_later_chunk_get_their_own_confusion():
    df, _, _ = _crowd(n_tasks=400, seed=6)
    late = df.iloc[:30].assign(task=lambda d: d["task"] + 10_000, worker="newcomer")
    late = late.drop_duplicates("task")
    for method in METHODS:
        agg = build_aggregator(method, 3).partial_fit(df)
        assert "newcomer" not in agg.worker_confusions()
        agg.partial_fit(late)
        assert agg.worker_confusions()["newcomer"].shape == (3, 3)


def test_bila_options_are_checked():
    with pytest.raises(ConfigError, match="unknown BILA option.*bogus"):
        BILA(3, bogus=1)


def test_benchmark_runs_on_a_small_subset(tmp_path):
    from fedkd_benchmarks.crowd_aggregation import main

    main(["--sets", "bluebird", "--regimes", "ten_class_small", "--regime-draws", "1", "--seeds", "1",
          "--synthetic-tasks", "300", "--no-crowdkit", "--large-workers", "300", "--out", str(tmp_path)])
    runs = pd.read_csv(tmp_path / "crowd_aggregation.csv")
    assert {"mv", "ds", "bila-offline", "ds-stream", "bila", "bila-nolp"} <= set(runs["method"])
    assert set(runs["dataset"]) == {"bluebird", "ten_class_small", "synthetic"} and runs["accuracy"].between(0, 1).all()
    large = pd.read_csv(tmp_path / "crowd_aggregation_large.csv")
    assert {"mv", "ds-stream", "bila"} == set(large["method"]) and (large["seconds"] > 0).all()
    assert "| bluebird |" in (tmp_path / "crowd_aggregation.md").read_text()
    assert (tmp_path / "crowd_aggregation_curves.png").stat().st_size > 10_000


def test_bila_options_name_allowed_values():
    with pytest.raises(ConfigError, match="shrink_to 'median'.*pooled, one_coin, worker"):
        BILA(3, shrink_to="median")
    with pytest.raises(ConfigError, match="shrink_rule 'guess'.*fixed, moments"):
        BILA(3, shrink_rule="guess")
    with pytest.raises(ConfigError, match="shrinkage and tol must be >= 0"):
        BILA(3, shrinkage=-1.0)


def test_bila_updates_only_the_workers_of_the_chunk():
    """Time per chunk stays flat: a chunk moves the state of its own workers and nobody else's."""
    df, _, _ = _crowd(n_tasks=600, n_workers=12, labels_per_item=3, seed=8)
    first = df[df["worker"] < 6].copy()
    second = df[(df["worker"] >= 6) & (df["task"] >= 300)].copy()
    agg = BILA(3, seed=0).partial_fit(df)
    before = agg.state_dict()
    agg.partial_fit(second)
    after = agg.state_dict()
    untouched = [agg.workers_.index(w) for w in first["worker"].unique()]
    for name in ("conf_logits_", "memory_"):
        np.testing.assert_array_equal(before[name][untouched], after[name][untouched])
        assert not np.array_equal(before[name], after[name])
    rows = (np.array(untouched)[:, None] * 3 + np.arange(3)).ravel()
    np.testing.assert_array_equal(before["embed_"][rows], after["embed_"][rows])


def test_bila_shrinkage_keeps_it_at_majority_vote_when_workers_give_few_labels():
    """Thousands of one-coin workers with a handful of labels each: a full confusion per worker is noise. The
    shrinkage prior makes BILA a weighted vote there; without it, it falls well below majority vote."""
    from fedkd.data.crowd_regimes import simulate_regime

    crowd = simulate_regime("many_workers", seed=1)
    chunks = chunk_tasks(crowd.labels, n_chunks=10)
    mv = gold_accuracy(MajorityVote(2).fit_predict(crowd.labels), crowd.gold)[0]
    shrunk = gold_accuracy(pd.concat(predict_online(BILA(2, seed=0), chunks)), crowd.gold)[0]
    bare = gold_accuracy(pd.concat(predict_online(BILA(2, seed=0, shrinkage=0.0), chunks)), crowd.gold)[0]
    assert shrunk >= mv - 0.005
    assert bare < mv - 0.03


def test_bila_agreement_strength_recovers_the_spread_of_worker_accuracies():
    """200 one-coin workers with accuracies spread over 0.6-0.9: the beta prior that matches that spread has about
    25 pseudo-labels. Co-worker agreement recovers it; accuracy against majority-vote shares (``moments``) treats
    each soft share as a coin flip, over-states the noise, finds no spread and would shrink without limit."""
    from fedkd.aggregation.dawid_skene import vote_shares

    rng = np.random.default_rng(0)
    conf = make_confusions(200, 2, "uniform", (0.1, 0.4), rng)
    df = simulate_labels(rng.integers(0, 2, size=4000), conf, 5, rng)
    accuracy = conf[:, 0, 0]
    truth = accuracy.mean() * (1 - accuracy.mean()) / accuracy.var() - 1
    agreement = BILA(2, shrinkage=1e6)
    estimate = agreement._agreement_strength(agreement._encode(df, grow=True))
    assert truth / 1.5 < estimate < truth * 1.5
    moments = BILA(2, shrink_rule="moments", shrinkage=1e6)
    enc = moments._encode(df, grow=True)
    assert moments._strength(enc, vote_shares(enc, 2)) * 2 > truth * 100


def test_bila_agreement_strength_pools_workers_who_agree_only_by_chance():
    """Workers who answer at random agree as often as chance: no worker can be told from another by agreement,
    so all are pooled (the strongest prior allowed)."""
    rng = np.random.default_rng(1)
    df = simulate_labels(rng.integers(0, 3, size=2000), make_confusions(50, 3, "uniform", 2 / 3, rng), 4, rng)
    agg = BILA(3, shrink_rule="agreement", shrinkage=7.0)
    assert agg._agreement_strength(agg._encode(df, grow=True)) == 7.0


def test_bila_closed_form_step_scores_labels_by_the_expected_log_confusion():
    """With many labels in a row the expected log confusion is the log of the mean; with few, a label the worker
    rarely gave for that class counts as much less likely, so a worker known from a handful of labels weighs less."""
    from fedkd.aggregation.base import EncodedChunk
    from fedkd.aggregation.bila import _vb_confusions

    enc = EncodedChunk(pd.Index([0]), np.array([0]), np.array([0]), np.array([0]))
    q = torch.tensor([[1.0, 0.0]])
    for scale, gap in ((1000.0, 0.01), (1.0, 1.0)):
        prior = torch.tensor([[[2.0, 0.2], [0.2, 2.0]]]) * scale
        expected = _vb_confusions(prior, enc, q, 1)[0, 0]
        counts = prior[0, 0] + torch.tensor([1.0, 0.0])
        log_mean = torch.log(counts / counts.sum())
        contrast = (expected[0] - expected[1]) - (log_mean[0] - log_mean[1])
        assert (contrast.abs() < gap) if scale > 1 else (contrast > gap)


def test_bila_state_round_trips_with_the_moments_rule_and_adam_steps():
    """The default (agreement, closed-form steps) is covered with every method above; this is the other path."""
    df, _, _ = _crowd(n_tasks=600, seed=4)
    chunks = chunk_tasks(df, n_chunks=3)
    options = {"shrink_rule": "moments", "m_step": False}
    original = BILA(3, seed=7, **options).partial_fit(chunks[0])
    restored = BILA(3, seed=0)
    restored.load_state_dict(original.state_dict())
    assert restored.config == original.config
    for chunk in chunks[1:]:
        pd.testing.assert_frame_equal(original.partial_fit(chunk).predict_proba(chunk),
                                      restored.partial_fit(chunk).predict_proba(chunk))


def test_bila_worker_centre_follows_each_workers_accuracy_with_its_evidence():
    """``shrink_to="worker"``: the centre of a worker's prior is the pooled confusion moved to that worker's own
    accuracy, shrunk to the crowd's by the prior's strength. After a first chunk, an expert known from hundreds of
    labels is centred on a sharper diagonal than the crowd, a worker with two labels stays near the crowd, and rows
    stay distributions."""
    from fedkd.aggregation.dawid_skene import vote_shares

    rng = np.random.default_rng(3)
    conf = make_confusions(10, 3, "uniform", 0.4, rng)
    conf[0] = make_confusions(1, 3, "uniform", 0.05, rng)[0]
    first, second = chunk_tasks(simulate_labels(rng.integers(0, 3, size=3000), conf, 4, rng), n_chunks=2)
    second = pd.concat([second, pd.DataFrame({"task": [0, 1], "worker": ["newcomer"] * 2, "label": [0, 1]})])
    agg = BILA(3, seed=0, shrink_to="worker", shrinkage=10.0).partial_fit(first)
    enc = agg._encode(second, grow=True)
    shares = vote_shares(enc, 3)
    pooled = agg._shrink_target(enc, shares)
    centres = agg._worker_targets(enc, shares, pooled, 10.0)
    codes = list(agg.workers_)
    expert, newcomer, average = codes.index(0), codes.index("newcomer"), codes.index(5)
    torch.testing.assert_close(centres.sum(dim=2), torch.ones(len(codes), 3))
    diag = torch.diagonal(centres, dim1=1, dim2=2)
    assert (diag[expert] > torch.diagonal(pooled) + 0.1).all()
    assert (diag[newcomer] - torch.diagonal(pooled)).abs().max() < 2 / (2 + 10) * 0.4   # its share of the evidence
    assert (diag[expert] > diag[average]).all()


def test_bila_worker_centre_beats_the_pooled_centre_on_one_coin_workers_with_tens_of_labels():
    """One-coin workers of spread accuracy with tens of labels each: one accuracy per worker is the right amount of
    model. Centring each worker's prior on its own accuracy is worth more than a point over the crowd's centre."""
    from fedkd.data.crowd_regimes import simulate_regime

    crowd = simulate_regime("one_coin", seed=1)
    chunks = chunk_tasks(crowd.labels, n_chunks=10)
    scores = {to: gold_accuracy(pd.concat(predict_online(BILA(crowd.n_classes, seed=0, shrink_to=to), chunks)),
                                crowd.gold)[0] for to in ("pooled", "worker")}
    assert scores["worker"] > scores["pooled"] + 0.005
