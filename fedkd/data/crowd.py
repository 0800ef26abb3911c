"""Noisy crowds: simulated annotators, crowd-label CSV I/O with validation, and the bundled real sets.

Crowd labels use the long format of crowd-kit and of the truth-inference benchmarks: one row per
(task, worker) answer with columns ``task, worker, label``; gold truth has columns ``task, true_label``.
Task and worker ids may be ints or strings; read from a CSV they are always strings, so ``007`` and ``7``
stay two tasks. Labels are class indices ``0..C-1``.

An annotator is a row-stochastic confusion matrix ``pi[t, l] = P(label l | true class t)``. The
simulator draws pools of such matrices (:func:`make_confusions`), lets each item be labelled by a few
of them (:func:`simulate_labels`), and cuts the result into chunks that arrive over rounds
(:func:`chunk_tasks`), which is the setting an online aggregator such as BILA is built for.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from fedkd.errors import DataError
from fedkd.seeding import numpy_rng

NOISE_KINDS = ("uniform", "pair_flip", "hammer_spammer", "class_dependent", "mixed")
# The "mixed" pool: shares of experts, average workers, spammers and adversaries, and the experts' and
# adversaries' wrong-label rates relative to the average worker's (see make_confusions).
MIXED_SHARES = {"expert": 0.25, "average": 0.45, "spammer": 0.2, "adversary": 0.1}
EXPERT_NOISE_FACTOR = 0.25
LABEL_COLUMNS = ("task", "worker", "label")
GOLD_COLUMNS = ("task", "true_label")

_SETS_DIR = Path(__file__).with_name("crowd_sets")
# Number of classes of each bundled set (from the labels and gold of the shared data README).
_SET_CLASSES = {"bluebird": 2, "dog": 4, "rte": 2, "web": 5, "sp": 2, "product": 2, "face": 4, "trec": 2}
CROWD_SETS: tuple[str, ...] = tuple(_SET_CLASSES)


# --- simulated annotators -------------------------------------------------------------------------


def _noise_rates(noise: float | tuple[float, float] | np.ndarray, n_annotators: int,
                 rng: np.random.Generator) -> np.ndarray:
    """One wrong-label rate per annotator: a float for all, a (lo, hi) tuple drawn uniformly, or an array."""
    if isinstance(noise, tuple):
        if len(noise) != 2 or not 0.0 <= noise[0] <= noise[1] <= 1.0:
            raise DataError(f"noise range {noise!r} must be a (lo, hi) tuple with 0 <= lo <= hi <= 1")
        return rng.uniform(noise[0], noise[1], size=n_annotators)
    rates = np.broadcast_to(np.asarray(noise, dtype=np.float64), (n_annotators,)).copy()
    if np.any((rates < 0.0) | (rates > 1.0)) or not np.all(np.isfinite(rates)):
        raise DataError(f"noise {noise!r} must lie in [0, 1] (the probability that a label is wrong)")
    return rates


def make_confusions(
    n_annotators: int,
    n_classes: int,
    kind: str,
    noise: float | tuple[float, float] | np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """A pool of ``n_annotators`` confusion matrices, shape (K, C, C), rows summing to one.

    ``noise`` is each annotator's *expected wrong-label rate* under a uniform class prior,
    ``e = 1 - mean_t pi[t, t]``: one float for all annotators, a ``(lo, hi)`` tuple from which one rate
    per annotator is drawn uniformly, or an array of K rates. What the rate does depends on ``kind``:

    - ``uniform``: ``pi[t, t] = 1 - e``, the wrong mass spread evenly, ``pi[t, l] = e / (C - 1)``.
    - ``pair_flip``: ``pi[t, t] = 1 - e``, ``pi[t, (t + 1) % C] = e`` (systematic confusion of neighbours).
    - ``hammer_spammer``: each annotator is a *spammer* (every row uniform, ``1/C``) with probability
      ``e * C / (C - 1)`` and a *hammer* (identity, never wrong) otherwise, so its expected wrong-label
      rate is still ``e``; this needs ``e <= (C - 1) / C``.
    - ``class_dependent``: class t has its own wrong rate ``e_t`` with ``mean_t e_t = e`` exactly, each
      ``e_t`` within ``e +- min(e, 1 - e)``; the wrong mass of row t is split over the other classes by a
      flat Dirichlet draw, so some confusions are much likelier than others.
    - ``mixed``: a crowd of mixed skill, as real crowds are: each annotator is drawn to be an *expert*
      (``class_dependent`` at rate ``e / 4``), an *average* worker (``class_dependent`` at rate ``e``), a
      *spammer* (half of them answer uniformly at random, half always give one label of their own) or an
      *adversary* (``pair_flip`` at rate ``1 - e / 4``: mostly the neighbouring class) with the shares of
      ``MIXED_SHARES``. ``e`` is then the average worker's rate, not the pool's.
    """
    if kind not in NOISE_KINDS:
        raise DataError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
    if int(n_classes) < 2 or int(n_annotators) < 1:
        raise DataError(f"need n_classes >= 2 and n_annotators >= 1, got {n_classes} and {n_annotators}")
    K, C = int(n_annotators), int(n_classes)
    rates = _noise_rates(noise, K, rng)
    eye = np.eye(C)
    if kind == "uniform":
        off = (1.0 - eye) / (C - 1)
        return (1.0 - rates)[:, None, None] * eye + rates[:, None, None] * off
    if kind == "pair_flip":
        flip = np.roll(eye, 1, axis=1)
        return (1.0 - rates)[:, None, None] * eye + rates[:, None, None] * flip
    if kind == "hammer_spammer":
        p_spam = rates * C / (C - 1)
        if np.any(p_spam > 1.0 + 1e-12):
            raise DataError(f"hammer_spammer noise must be <= (C-1)/C = {(C - 1) / C:.3f}, got max {rates.max():.3f}")
        spammer = rng.random(K) < p_spam
        return np.where(spammer[:, None, None], np.full((C, C), 1.0 / C), eye)
    if kind == "mixed":
        return _mixed_confusions(rates, C, rng)
    return _class_dependent(rates, C, rng)


def _class_dependent(rates: np.ndarray, C: int, rng: np.random.Generator) -> np.ndarray:
    """``class_dependent`` confusions (see :func:`make_confusions`) for the given per-annotator rates."""
    K = rates.size
    u = rng.uniform(-1.0, 1.0, size=(K, C))
    u -= u.mean(axis=1, keepdims=True)
    u /= np.maximum(1.0, np.abs(u).max(axis=1, keepdims=True))
    row_rates = rates[:, None] + np.minimum(rates, 1.0 - rates)[:, None] * u
    split = rng.dirichlet(np.ones(C - 1), size=(K, C))
    confusions = np.zeros((K, C, C))
    for t in range(C):
        others = [c for c in range(C) if c != t]
        confusions[:, t, t] = 1.0 - row_rates[:, t]
        confusions[:, t, others] = row_rates[:, t, None] * split[:, t]
    return confusions


def _mixed_confusions(rates: np.ndarray, C: int, rng: np.random.Generator) -> np.ndarray:
    """The ``mixed`` pool of :func:`make_confusions`: experts, average workers, spammers and adversaries."""
    K = rates.size
    kinds = rng.choice(len(MIXED_SHARES), size=K, p=list(MIXED_SHARES.values()))
    expert, average, spammer, adversary = (kinds == i for i in range(len(MIXED_SHARES)))
    eye = np.eye(C)
    confusions = _class_dependent(np.where(expert, EXPERT_NOISE_FACTOR * rates, rates), C, rng)
    constant = rng.random(K) < 0.5
    favourite = eye[rng.integers(0, C, size=K)]
    spam = np.where(constant[:, None, None], favourite[:, None, :], np.full((C, C), 1.0 / C))
    confusions[spammer] = np.broadcast_to(spam, (K, C, C))[spammer]
    wrong = 1.0 - EXPERT_NOISE_FACTOR * rates
    flips = (1.0 - wrong)[:, None, None] * eye + wrong[:, None, None] * np.roll(eye, 1, axis=1)
    confusions[adversary] = flips[adversary]
    return confusions


def make_bimodal_confusions(
    n_annotators: int,
    n_classes: int,
    noise: float,
    rng: np.random.Generator,
    good_noise: float = 0.1,
) -> np.ndarray:
    """A "bimodal" pool, a mix of good and poor annotators: a random half (rounded down) are poor, with
    ``class_dependent`` noise at wrong-label rate ``noise``, so their mistakes cluster on a few classes
    and can outvote the truth; the others are good, with ``uniform`` noise at rate ``good_noise``.

    This is the crowd of the thesis-style benchmark (10 classes, 10 annotators, noise 0.6), where a
    method that learns who to trust should beat majority vote by a wide margin.
    """
    poor = rng.permutation(int(n_annotators)) < int(n_annotators) // 2
    bad = make_confusions(n_annotators, n_classes, "class_dependent", noise, rng)
    good = make_confusions(n_annotators, n_classes, "uniform", good_noise, rng)
    return np.where(poor[:, None, None], bad, good)


def simulate_bimodal_crowd(
    n_tasks: int = 50_000,
    n_classes: int = 10,
    n_annotators: int = 10,
    noise: float = 0.6,
    missing: float = 0.1,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """The thesis-style synthetic crowd: uniform true classes, a :func:`make_bimodal_confusions` pool, and
    a fraction ``missing`` of (task, annotator) pairs left unlabelled (each task labelled by
    ``round((1 - missing) * n_annotators)`` annotators). Returns (labels, gold, confusions)."""
    rng = numpy_rng(seed, "crowd", "bimodal")
    confusions = make_bimodal_confusions(n_annotators, n_classes, noise, rng)
    truth = rng.integers(0, n_classes, size=int(n_tasks))
    per_item = max(1, round((1.0 - missing) * n_annotators))
    labels = simulate_labels(truth, confusions, per_item, rng)
    return labels, pd.DataFrame({"task": np.arange(truth.size), "true_label": truth}), confusions


def client_annotator_pools(
    n_clients: int,
    n_annotators: int,
    n_classes: int,
    kind: str,
    noise: float | tuple[float, float],
    seed: int,
) -> list[np.ndarray]:
    """One annotator pool per client, each from its own seeded stream, so a client's crowd does not
    change when the number of clients does."""
    return [
        make_confusions(n_annotators, n_classes, kind, noise, numpy_rng(seed, "crowd", "client", i))
        for i in range(int(n_clients))
    ]


def simulate_labels(
    true_labels: np.ndarray,
    confusions: np.ndarray,
    labels_per_item: int,
    rng: np.random.Generator,
    task_ids: Sequence | None = None,
    worker_ids: Sequence | None = None,
) -> pd.DataFrame:
    """Crowd labels in long format: each item is labelled by ``labels_per_item`` distinct annotators
    drawn at random, annotator k answering class l with probability ``confusions[k, true, l]``.

    Rows are ordered by task in the given order, then by annotator. ``labels_per_item < K`` leaves the
    other (task, worker) pairs missing, e.g. 9 of 10 annotators gives 10 % missing pairs.
    """
    y = np.asarray(true_labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"true_labels must be a 1-D integer array, got shape {y.shape} and dtype {y.dtype}")
    confusions = np.asarray(confusions, dtype=np.float64)
    K, C = confusions.shape[0], confusions.shape[-1]
    if confusions.shape != (K, C, C) or not np.allclose(confusions.sum(-1), 1.0) or np.any(confusions < 0):
        raise DataError(f"confusions must be a (K, C, C) row-stochastic array, got shape {confusions.shape}")
    if y.size and (y.min() < 0 or y.max() >= C):
        raise DataError(f"true_labels must lie in 0..{C - 1}, got values from {y.min()} to {y.max()}")
    if not 1 <= int(labels_per_item) <= K:
        raise DataError(f"labels_per_item must be in 1..{K} (the number of annotators), got {labels_per_item}")
    task_ids = np.arange(y.size) if task_ids is None else np.asarray(task_ids)
    worker_ids = np.arange(K) if worker_ids is None else np.asarray(worker_ids)
    if task_ids.shape != y.shape or worker_ids.shape != (K,):
        raise DataError(f"need {y.size} task_ids and {K} worker_ids, got {task_ids.shape} and {worker_ids.shape}")
    L = int(labels_per_item)
    chosen = np.sort(np.argsort(rng.random((y.size, K)), axis=1)[:, :L], axis=1).ravel()
    truth = np.repeat(y, L)
    cdf = np.cumsum(confusions, axis=-1)[chosen, truth]
    labels = np.minimum((rng.random(chosen.size)[:, None] >= cdf).sum(axis=1), C - 1)
    return pd.DataFrame({"task": np.repeat(task_ids, L), "worker": worker_ids[chosen],
                         "label": labels.astype(np.int64)})


def chunk_tasks(df: pd.DataFrame, n_chunks: int | None = None, chunk_size: int | None = None) -> list[pd.DataFrame]:
    """Split crowd labels into chunks of whole tasks, in order of each task's first appearance.

    Give exactly one of ``n_chunks`` (tasks split as evenly as possible) or ``chunk_size`` (tasks per
    chunk, the last one smaller). All rows of a task land in the same chunk, in their original order.
    """
    if (n_chunks is None) == (chunk_size is None):
        raise DataError("give exactly one of n_chunks or chunk_size")
    codes, uniques = pd.factorize(df["task"])
    n_tasks = len(uniques)
    if n_chunks is not None:
        if int(n_chunks) < 1:
            raise DataError(f"n_chunks must be >= 1, got {n_chunks}")
        parts = np.array_split(np.arange(n_tasks), min(int(n_chunks), max(n_tasks, 1)))
        chunk_of_task = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    else:
        if int(chunk_size) < 1:
            raise DataError(f"chunk_size must be >= 1, got {chunk_size}")
        chunk_of_task = np.arange(n_tasks) // int(chunk_size)
    chunk_of_row = chunk_of_task[codes]
    return [part for _, part in df.groupby(chunk_of_row, sort=True)]


# --- validation and CSV I/O -----------------------------------------------------------------------


def _require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame with columns {', '.join(columns)}, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{what} is missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))}")
    if df.empty:
        raise DataError(f"{what} has no rows")
    nulls = [c for c in columns if df[c].isna().any()]
    if nulls:
        raise DataError(f"{what} has empty values in column(s) {', '.join(nulls)}")


def _integer_labels(values: pd.Series, column: str, n_classes: int | None) -> np.ndarray:
    """Labels as int64 class indices, or a DataError naming the first offending values.

    Booleans are refused although Python counts ``True`` as 1: a ``True`` in a label column is a broken
    file, not class 1. Integral floats (``2.0``) are accepted; ``inf`` and ``nan`` are not integers.
    """
    if pd.api.types.is_bool_dtype(values):
        raise DataError(f"column {column!r} must hold integer class indices; found booleans (True/False)")
    if values.dtype == object:
        is_bool = np.fromiter((isinstance(v, (bool, np.bool_)) for v in values), dtype=bool, count=len(values))
        if is_bool.any():
            examples = ", ".join(repr(v) for v in pd.unique(values[is_bool])[:3].tolist())
            raise DataError(f"column {column!r} must hold integer class indices; found booleans {examples}")
    numeric = pd.to_numeric(values, errors="coerce")
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(numeric.to_numpy(dtype=np.float64)) | (numeric != np.round(numeric)).to_numpy()
    if bad.any():
        examples = ", ".join(repr(v) for v in pd.unique(values[bad])[:3].tolist())
        raise DataError(f"column {column!r} must hold integer class indices; found non-integer values {examples}")
    labels = numeric.to_numpy(dtype=np.float64).astype(np.int64)
    upper = None if n_classes is None else int(n_classes) - 1
    out = (labels < 0) if upper is None else (labels < 0) | (labels > upper)
    if out.any():
        allowed = "non-negative" if upper is None else f"in 0..{upper}"
        examples = ", ".join(str(v) for v in np.unique(labels[out])[:5])
        raise DataError(f"column {column!r} has labels outside the allowed range ({allowed}): {examples}")
    return labels


def _drop_duplicates(df: pd.DataFrame, key: list[str], what: str) -> pd.DataFrame:
    dup = df.duplicated(subset=key, keep="last")
    if dup.any():
        first = df.loc[dup, key].iloc[0].tolist()
        warnings.warn(
            f"{what}: {int(dup.sum())} duplicate ({', '.join(key)}) row(s), e.g. {first}; keeping the last of each",
            stacklevel=3,
        )
        df = df.loc[~dup]
    return df


def validate_crowd(df: pd.DataFrame, n_classes: int | None = None) -> pd.DataFrame:
    """Check crowd labels and return a clean copy: columns ``task, worker, label``, int64 labels.

    Raises DataError for a missing column, no rows, empty values, non-integer labels or labels outside
    ``0..n_classes-1``; duplicate (task, worker) rows keep the last one with a warning.
    """
    _require_columns(df, LABEL_COLUMNS, "crowd labels")
    labels = _integer_labels(df["label"], "label", n_classes)
    clean = pd.DataFrame({"task": df["task"].to_numpy(), "worker": df["worker"].to_numpy(), "label": labels})
    return _drop_duplicates(clean, ["task", "worker"], "crowd labels").reset_index(drop=True)


def validate_gold(df: pd.DataFrame, n_classes: int | None = None) -> pd.DataFrame:
    """Check gold truth (``task, true_label``) like :func:`validate_crowd`; duplicate tasks keep the last."""
    _require_columns(df, GOLD_COLUMNS, "gold labels")
    labels = _integer_labels(df["true_label"], "true_label", n_classes)
    clean = pd.DataFrame({"task": df["task"].to_numpy(), "true_label": labels})
    return _drop_duplicates(clean, ["task"], "gold labels").reset_index(drop=True)


def _read_csv(path: str | PathLike, what: str, id_columns: Sequence[str]) -> pd.DataFrame:
    """Read a CSV with ``id_columns`` as strings (``007`` is not ``7``) and only empty cells as missing:
    ``NA`` or ``null`` may be somebody's id."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{what} file {str(path)!r} is a directory; give the CSV file inside it")
    if not path.is_file():
        raise DataError(f"{what} file {str(path)!r} does not exist")
    try:
        return pd.read_csv(path, dtype={c: str for c in id_columns}, keep_default_na=False, na_values=[""],
                           encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise DataError(f"{what} file {str(path)!r} is empty") from None
    except pd.errors.ParserError as err:
        raise DataError(f"{what} file {str(path)!r} is not valid CSV: {err}") from None
    except UnicodeDecodeError as err:
        raise DataError(
            f"{what} file {str(path)!r} is not UTF-8 text (it holds byte 0x{err.object[err.start]:02x}); "
            "save it as UTF-8"
        ) from None
    except PermissionError:
        raise DataError(f"{what} file {str(path)!r} cannot be read (permission denied)") from None


def read_crowd_csv(path: str | PathLike, n_classes: int | None = None) -> pd.DataFrame:
    """Read and validate a ``task,worker,label`` CSV (see :func:`validate_crowd`); ids are read as strings."""
    return validate_crowd(_read_csv(path, "crowd labels", ("task", "worker")), n_classes)


def read_gold_csv(path: str | PathLike, n_classes: int | None = None) -> pd.DataFrame:
    """Read and validate a ``task,true_label`` CSV (see :func:`validate_gold`); task ids are read as strings."""
    return validate_gold(_read_csv(path, "gold labels", ("task",)), n_classes)


def write_crowd_csv(df: pd.DataFrame, path: str | PathLike) -> None:
    """Validate crowd labels and write them as a ``task,worker,label`` CSV."""
    validate_crowd(df).to_csv(path, index=False)


def gold_accuracy(labels: pd.Series, gold: pd.DataFrame) -> tuple[float, int]:
    """Accuracy of aggregated ``labels`` (task -> class) on the gold tasks they cover, and how many those are."""
    truth = gold.set_index("task")["true_label"]
    common = truth.index.intersection(labels.index)
    if len(common) == 0:
        raise DataError("no gold task has an aggregated label: check that the task ids of labels and gold match")
    return float((labels.loc[common].to_numpy() == truth.loc[common].to_numpy()).mean()), len(common)


# --- bundled real crowd sets ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CrowdSet:
    """A real crowdsourced label set with its gold truth, provenance and licence text."""

    name: str
    labels: pd.DataFrame
    gold: pd.DataFrame
    n_classes: int
    source: str
    license: str


def load_crowd(name: str) -> CrowdSet:
    """Load a bundled real crowd set by name (``bluebird``, ``dog``, ``rte``, ``web``, ``sp``,
    ``product``, ``face``, ``trec``), validated, from the files shipped inside the package."""
    if name not in _SET_CLASSES:
        raise DataError(f"unknown crowd set {name!r}; available: {', '.join(CROWD_SETS)}")
    folder = _SETS_DIR / name
    n_classes = _SET_CLASSES[name]
    return CrowdSet(
        name=name,
        labels=read_crowd_csv(folder / "labels.csv", n_classes),
        gold=read_gold_csv(folder / "gold.csv", n_classes),
        n_classes=n_classes,
        source=(folder / "SOURCE.txt").read_text(),
        license=(folder / "LICENSE").read_text(),
    )
