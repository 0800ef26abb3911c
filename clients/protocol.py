"""The message protocol between fedkd's server strategies and its ClientApp.

Every instruction carries the run's resolved config as JSON, so a node needs no files of its own: it
rebuilds its data, labels and model from the config and its ``partition-id``. Keys are named here once.

* ``train`` with ``arrays``: train the global weights on the local labels, reply with weights (FedAvg).
* ``train`` without ``arrays``: train the node's own model, reply with metrics only (data-free strategies:
  weights never leave the node) and ``label-counts``, the histogram of its aggregated labels; only a run that
  measures the one-shot FedAvg reference (``query.eval_references``) gets the node's weights as ``arrays`` too.
* ``query``: ``queries`` holds a wave of images as ``uint8`` ``codes`` with their per-image ``scale``
  (``fedkd.payload``); the reply's ``answers`` holds class indices in the smallest integer type (``query-mode`` =
  ``"label"``) or ``float16`` probabilities (``"proba"``) from the node's own model. A node whose node config says
  ``answer-mode = "label"`` answers labels whatever the server asks. A ``query`` without ``queries`` is a roll
  call: the reply carries only the node's ``partition-id``, so the server can address partitions.
"""

from __future__ import annotations

import json
from functools import lru_cache

from flwr.app import ConfigRecord

from fedkd.config import ExperimentConfig, load_config

ARRAYS = "arrays"
METRICS = "metrics"
CONFIG = "config"
CONFIG_JSON = "fedkd-config"
ROUND = "server-round"
PARTITION = "partition-id"
NUM_EXAMPLES = "num-examples"
QUERIES = "queries"
ANSWERS = "answers"
QUERY_MODE = "query-mode"
TENSOR = "x"
CODES = "codes"
SCALE = "scale"
ANSWER_MODE = "answer-mode"
LABEL_COUNTS = "label-counts"


def instruction_config(cfg: ExperimentConfig, server_round: int) -> ConfigRecord:
    return ConfigRecord({CONFIG_JSON: json.dumps(cfg.to_dict(), sort_keys=True), ROUND: server_round})


def read_instruction_config(record: ConfigRecord) -> tuple[ExperimentConfig, int]:
    return _decode(str(record[CONFIG_JSON])), int(record[ROUND])


@lru_cache(maxsize=8)
def _decode(text: str) -> ExperimentConfig:
    return load_config(json.loads(text))
