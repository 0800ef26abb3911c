"""The fedkd ClientApp: a node that holds one partition with noisy crowd labels.

``train`` takes in the round's label chunk through the node's aggregator (state kept in ``context.state``
between rounds) and trains either the received global model (FedAvg: the reply carries weights) or the
node's own model (data-free strategies: the reply carries metrics only). ``query`` answers a batch of
queries with the node's own model — labels only, or probabilities, as the server asks. All the work is in
``fedkd.federation``; this file only moves it through Flower messages.
"""

from __future__ import annotations

import pickle

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from clients.protocol import (
    ANSWERS,
    ARRAYS,
    CONFIG,
    LABEL_COUNTS,
    METRICS,
    NUM_EXAMPLES,
    PARTITION,
    QUERIES,
    QUERY_MODE,
    TENSOR,
    read_instruction_config,
)
from fedkd.config import ExperimentConfig
from fedkd.federation.data import ClientData, client_data
from fedkd.federation.local import (
    ClientState,
    answer_queries,
    ingest_labels,
    label_counts,
    local_train,
    own_model_round,
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
    _save_state(context, state)
    reply[METRICS] = MetricRecord({NUM_EXAMPLES: examples, PARTITION: partition_id, **metrics})
    return Message(content=reply, reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    cfg, server_round, partition_id, data = _node(msg, context)
    state = own_model_round(cfg, data, _load_state(context), server_round)
    _save_state(context, state)
    x = msg.content[QUERIES].to_torch_state_dict()[TENSOR]
    answers = answer_queries(cfg, data, state, x, str(msg.content[CONFIG][QUERY_MODE]))
    reply = RecordDict(
        {
            ANSWERS: ArrayRecord.from_torch_state_dict({TENSOR: answers}),
            METRICS: MetricRecord({PARTITION: partition_id}),
        }
    )
    return Message(content=reply, reply_to=msg)


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
