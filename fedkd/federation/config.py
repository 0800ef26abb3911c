"""Config sections of a federated experiment (``[federation]``, ``[crowd]``, ``[client]``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Literal

from fedkd.config import require_choice
from fedkd.errors import ConfigError


@dataclass
class FederationSection:
    """How the data is split over clients and how the server runs rounds.

    Each round the server works with a sample of the clients (``fedkd.federation.sampling``): ``clients_per_round``
    of them when it is set (> 0), else a ``fraction_train`` share, drawn afresh each round from the run seed.

    ``client_cpus`` and ``client_gpus`` are each simulated client's share of the machine (Ray's resources;
    fractions let several clients share a CPU core or a GPU). Clients train on ``run.device``, so a run on
    ``cuda`` needs ``client_gpus`` > 0 (e.g. ``1 / num_clients`` for all on one GPU): Ray hides the GPUs from a
    client with no share of them, and the simulation refuses such a config before it starts
    (``simulations/runner.py``) rather than let every client fail.
    """

    strategy: str = "fedavg"
    num_clients: int = 10
    num_rounds: int = 5
    partition: Literal["iid", "dirichlet", "shards"] = "dirichlet"
    alpha: float = 0.5
    shards_per_client: int = 2
    min_partition_size: int = 20
    fraction_train: float = 1.0
    clients_per_round: int = 0
    round_timeout: float = 600.0
    connect_timeout: float = 120.0
    client_cpus: float = 1.0
    client_gpus: float = 0.0

    def validate(self) -> None:
        require_choice("federation.strategy", self.strategy, (ep.name for ep in entry_points(group="fedkd.strategies")))
        if self.num_clients < 1:
            raise ConfigError(f"federation.num_clients must be >= 1, got {self.num_clients}")
        if self.num_rounds < 1:
            raise ConfigError(f"federation.num_rounds must be >= 1, got {self.num_rounds}")
        if self.alpha <= 0:
            raise ConfigError(f"federation.alpha must be > 0, got {self.alpha}")
        if not 0.0 < self.fraction_train <= 1.0:
            raise ConfigError(f"federation.fraction_train must be in (0, 1], got {self.fraction_train}")
        if not 0 <= self.clients_per_round <= self.num_clients:
            raise ConfigError(f"federation.clients_per_round must be in 0..num_clients={self.num_clients} "
                              f"(0: use fraction_train), got {self.clients_per_round}")
        if self.client_cpus <= 0 or self.client_gpus < 0:
            raise ConfigError(
                f"federation.client_cpus must be > 0 and client_gpus >= 0, got {self.client_cpus}, {self.client_gpus}"
            )


@dataclass
class CrowdSection:
    """The simulated annotators of each client and how their labels arrive over rounds.

    ``noise`` is the range of each annotator's wrong-label rate (one rate drawn per annotator);
    ``noise_kind`` how the wrong labels fall (``fedkd.data.crowd.make_confusions``): ``mixed`` draws a pool of
    mixed skill, as real crowds are (experts, average workers at the ``noise`` rate, spammers, adversaries),
    the setting in which cleaning can beat majority vote (with annotators all equally and uniformly wrong,
    majority vote is already optimal); ``chunks`` is the number of rounds over which a client's items arrive
    with their labels.
    """

    annotators_per_client: int = 5
    labels_per_item: int = 3
    noise_kind: Literal["uniform", "pair_flip", "hammer_spammer", "class_dependent", "mixed"] = "uniform"
    noise: tuple[float, float] = (0.3, 0.4)
    chunks: int = 3

    def validate(self) -> None:
        if not 1 <= self.labels_per_item <= self.annotators_per_client:
            raise ConfigError(
                f"crowd.labels_per_item must be in 1..annotators_per_client={self.annotators_per_client}, "
                f"got {self.labels_per_item}"
            )
        lo, hi = self.noise
        if not 0.0 <= lo <= hi < 1.0:
            raise ConfigError(f"crowd.noise must be [lo, hi] with 0 <= lo <= hi < 1, got {list(self.noise)}")
        if self.chunks < 1:
            raise ConfigError(f"crowd.chunks must be >= 1, got {self.chunks}")


@dataclass
class ClientSection:
    """What a client does with its labels: how it aggregates them and trains its local model.

    ``architectures`` (e.g. ``["lenet5", "mlp"]``) gives clients different models, cycled over partition ids;
    only data-free strategies accept it, since averaging weights needs one architecture. ``augment`` shifts each
    training image by up to 2 pixels: with noisy labels it keeps a client's model from memorising the wrong ones
    over many rounds. ``aggregator_options`` holds each
    aggregator's own settings under its name, e.g. ``{bila = {log_prior = false}}``; only the chosen
    aggregator's apply, so switching ``aggregator`` needs no other change (``benchmarks/client_labels.py``
    measures what BILA's class prior does on skewed clients).
    ``val_fraction`` > 0 holds out that share of a client's items (a fixed, seeded draw per item) and trains "to
    convergence": up to ``local_epochs`` epochs, keeping the epoch whose model best matches the held-out
    *cleaned* labels (the client has no other truth) and stopping after ``patience`` epochs without improvement
    (0: never early). One-shot federations (``simulations/oneshot.toml``) train each client once, this way.
    ``shared_init`` starts every client of a data-free strategy from the same seeded initialisation (FedAvg's
    initial global model) instead of one of its own: what one-shot FedAvg presumes, so that averaging the clients'
    models is a meaningful reference (``query.eval_references``).
    """

    model: str = "lenet5"
    architectures: tuple[str, ...] = ()
    aggregator: str = "mv"
    aggregator_options: dict[str, dict[str, bool | int | float | str]] = field(default_factory=dict)
    local_epochs: int = 2
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"
    augment: bool = False
    val_fraction: float = 0.0
    patience: int = 0
    shared_init: bool = False

    def validate(self) -> None:
        from fedkd.aggregation import AGGREGATORS, build_aggregator
        from fedkd.models import CLASSIFIERS

        for key, name in [("client.model", self.model), *(("client.architectures", a) for a in self.architectures)]:
            require_choice(key, name, CLASSIFIERS)
        require_choice("client.aggregator", self.aggregator, AGGREGATORS)
        for name, options in self.aggregator_options.items():
            require_choice("a key of client.aggregator_options", name, AGGREGATORS)
            try:
                build_aggregator(name, 2, **options)
            except ConfigError as err:
                raise ConfigError(f"client.aggregator_options.{name}: {err}") from None
        if self.local_epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(
                f"client.local_epochs and client.batch_size must be >= 1 and client.lr > 0, "
                f"got {self.local_epochs}, {self.batch_size}, {self.lr}"
            )
        if not 0.0 <= self.val_fraction < 1.0 or self.patience < 0:
            raise ConfigError(
                f"client.val_fraction must be in [0, 1) (0: no held-out labels) and client.patience >= 0, "
                f"got {self.val_fraction}, {self.patience}"
            )


@dataclass
class QuerySection:
    """How query strategies (``feddf``, ``fedtandem``, ``fedaedm``) ask the clients.

    The student, query budget and batch come from ``[distill]`` (the budget is spread evenly over the
    rounds); ``combine`` turns the clients' answers into one: ``mean`` of probabilities (vote shares in
    label mode), ``class_aware`` (each client weighed per class by its share of that class's labels), ``coverage``
    (each client read by a fixed model of which classes its labels cover: ``coverage_items`` labels of a class make
    it half-known, and a known class is answered right with chance ``coverage_accuracy``; see
    ``fedkd.federation.answers.coverage_likelihoods``), or an aggregator (``mv``, ``ds``, ``bila``) that treats
    each client as an annotator and learns its reliability from its answers.
    ``public_dataset`` is FedDF's unlabeled public data; ``public_box`` (0: none) resizes it into a centred box of
    that side in the clients' frame, background around it, as ``aedm.query_box`` does with decoded images (MNIST
    centres its digits in a 20x20 box of 28x28; public digits that fill the frame look unlike the clients' data).
    ``first_round`` is the round from which the budget is spent (evenly over the rounds left): before it the
    clients only train, since answers from clients whose labels are still arriving are poor and every stored
    answer is trained on again.
    ``wave_size`` is how many queries go to the clients in one message each (one *wave*, answered in one reply;
    see ``fedkd.distill.loop``); 0 takes the round's whole share of the budget, so a round costs one exchange with
    each client; ``distill.batch_size`` is the per-batch protocol (a round trip per query batch).
    ``store_every_round`` makes the student take one augmented pass over every stored answer after each round
    (for methods that keep an answer store), so it learns from the answers as they come instead of only once the
    budget is spent.
    ``eval_references`` also logs, on the same trained clients, ``test_acc/fedavg_oneshot`` (their weights averaged,
    where that is meaningful: one architecture and ``client.shared_init``), ``test_acc/ensemble_proba`` (their
    combined probabilities) and ``test_acc/best_client``: a simulation's measurement, for which the clients reveal
    weights and probabilities that never reach the student (``fedkd.federation.references``).
    """

    combine: str = "class_aware"
    coverage_items: float = 30.0
    coverage_accuracy: float = 0.9
    public_dataset: str = "digits28"
    public_box: int = 0
    eval_ensemble: bool = True
    first_round: int = 1
    wave_size: int = 0
    store_every_round: bool = False
    eval_references: bool = False

    def validate(self) -> None:
        from fedkd.data import DATASETS
        from fedkd.federation.answers import combine_choices

        require_choice("query.combine", self.combine, combine_choices())
        if self.coverage_items <= 0 or not 0.0 < self.coverage_accuracy <= 1.0:
            raise ConfigError(f"query.coverage_items must be > 0 and query.coverage_accuracy in (0, 1], "
                              f"got {self.coverage_items}, {self.coverage_accuracy}")
        require_choice("query.public_dataset", self.public_dataset, DATASETS)
        if self.first_round < 1:
            raise ConfigError(f"query.first_round must be >= 1, got {self.first_round}")
        if self.wave_size < 0:
            raise ConfigError(
                f"query.wave_size must be >= 0 (0: the round's share of the budget), got {self.wave_size}"
            )
        if self.eval_references and not self.eval_ensemble:
            raise ConfigError("query.eval_references = true needs query.eval_ensemble = true (the references are "
                              "measured with the clients' combined answer)")
        if self.public_box < 0:
            raise ConfigError(f"query.public_box must be >= 0 (0: the images as they are), got {self.public_box}")
