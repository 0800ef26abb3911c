"""The fedkd ClientApp: a node that holds one partition with noisy crowd labels.

``train`` takes in the round's label chunk through the node's aggregator (state kept in ``context.state``
between rounds) and trains either the received global model (FedAvg: the reply carries weights) or the
node's own model (data-free strategies: the reply carries metrics only, and its weights only for the one-shot
FedAvg reference of ``query.eval_references``). ``query`` answers a wave of
queries with the node's own model — labels only, or probabilities, as the server asks, unless the node's own
policy (node config ``answer-mode = "label"``) allows labels only. All the work is in
``fedkd.federation``; this file only moves it through Flower messages.
"""

from __future__ import annotations

import pickle

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedkd.config import ExperimentConfig
from fedkd.errors import FedkdError
from fedkd.federation.data import ClientData, client_data
from fedkd.federation.local import (
    ClientState,
    answer_queries,
    ingest_labels,
    label_counts,
    local_train,
    own_model_round,
)
from fedkd.federation.references import reveals_weights_for_reference
from fedkd.payload import compact_answers, decode_images
from fedkd_clients.protocol import (
    ANSWER_MODE,
    ANSWERS,
    ARRAYS,
    CODES,
    CONFIG,
    LABEL_COUNTS,
    METRICS,
    NUM_EXAMPLES,
    PARTITION,
    QUERIES,
    QUERY_MODE,
    SCALE,
    TENSOR,
    read_instruction_config,
)

STATE_KEY = "fedkd-client-state"

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    cfg, server_round, partition_id, data = _node(msg, context)
    if ARRAYS in msg.content:
        state = ingest_labels(cfg, data, _load_state(context), server_round)
        result = local_train(cfg, data, state, msg.content[ARRAYS].to_torch_state_dict(), server_round)
        examples, metrics = result.num_examples, result.metrics
        reply = RecordDict({ARRAYS: ArrayRecord.from_torch_state_dict(result.weights)})
    else:
        state = own_model_round(cfg, data, _load_state(context), server_round)
        examples = int((state.labels >= 0).sum())
        metrics = {**state.last_metrics, LABEL_COUNTS: label_counts(state.labels, data.n_classes)}
        reply = RecordDict()
        if reveals_weights(cfg, str(context.node_config.get(ANSWER_MODE, ""))):
            reply[ARRAYS] = ArrayRecord.from_torch_state_dict(state.model)
    _save_state(context, state)
    reply[METRICS] = MetricRecord({NUM_EXAMPLES: examples, PARTITION: partition_id, **metrics})
    return Message(content=reply, reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    partition_id = int(context.node_config[PARTITION])
    reply = RecordDict({METRICS: MetricRecord({PARTITION: partition_id})})
    if QUERIES not in msg.content:  # a roll call: the server learns which partition this node holds
        return Message(content=reply, reply_to=msg)
    cfg, server_round, partition_id, data = _node(msg, context)
    before = _load_state(context)
    state = own_model_round(cfg, data, before, server_round)
    if state is not before:
        _save_state(context, state)
    queries = msg.content[QUERIES].to_torch_state_dict()
    x = decode_images(queries[CODES], queries[SCALE])
    mode = answer_mode(str(msg.content[CONFIG][QUERY_MODE]), str(context.node_config.get(ANSWER_MODE, "")))
    answers = compact_answers(answer_queries(cfg, data, state, x, mode), data.n_classes)
    reply[ANSWERS] = ArrayRecord.from_torch_state_dict({TENSOR: answers})
    return Message(content=reply, reply_to=msg)


def answer_mode(asked: str, policy: str) -> str:
    """What the node answers: ``asked``, unless its own policy (node config ``answer-mode = "label"``) allows labels
    only, which it enforces whatever the server asks."""
    if policy not in ("", "label", "proba"):
        raise FedkdError(f"node config {ANSWER_MODE} = {policy!r} is not one of 'label', 'proba'")
    return "label" if policy == "label" else asked


def reveals_weights(cfg: ExperimentConfig, policy: str) -> bool:
    """Whether a data-free node sends its own weights after training: only for the one-shot FedAvg reference
    (``query.eval_references``, where averaging is meaningful), and never under a labels-only policy."""
    return reveals_weights_for_reference(cfg) and answer_mode("proba", policy) == "proba"


def _node(msg: Message, context: Context) -> tuple[ExperimentConfig, int, int, ClientData]:
    """The run's config and round from the instruction, this node's partition id and its data."""
    torch.set_num_threads(1)
    cfg, server_round = read_instruction_config(msg.content[CONFIG])
    partition_id = int(context.node_config[PARTITION])
    return cfg, server_round, partition_id, client_data(cfg, partition_id)


def _load_state(context: Context) -> ClientState | None:
    if STATE_KEY not in context.state:
        return None
    return pickle.loads(context.state[STATE_KEY]["blob"])


def _save_state(context: Context, state: ClientState) -> None:
    # Node-local only (never sent over the network), so pickling our own dataclass is safe here.
    context.state[STATE_KEY] = ConfigRecord({"blob": pickle.dumps(state)})
