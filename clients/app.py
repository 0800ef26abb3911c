"""The fedkd ClientApp: a node that holds one partition with noisy crowd labels.

Per train message it takes in the round's label chunk through its aggregator (state kept in the node's
``context.state`` between rounds), trains the received global model on its aggregated labels and replies
with the new weights and its metrics. All the work is in ``fedkd.federation``; this file only moves it
through Flower messages.
"""

from __future__ import annotations

import pickle

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from clients.protocol import ARRAYS, CONFIG, METRICS, NUM_EXAMPLES, PARTITION, read_instruction_config
from fedkd.federation.data import client_data
from fedkd.federation.local import ClientState, ingest_labels, local_train

STATE_KEY = "fedkd-client-state"

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)
    cfg, server_round = read_instruction_config(msg.content[CONFIG])
    partition_id = int(context.node_config[PARTITION])
    data = client_data(cfg, partition_id)
    state = ingest_labels(cfg, data, _load_state(context), server_round)
    _save_state(context, state)
    weights = msg.content[ARRAYS].to_torch_state_dict()
    result = local_train(cfg, data, state, weights, server_round)
    metrics = MetricRecord({NUM_EXAMPLES: result.num_examples, PARTITION: partition_id, **result.metrics})
    reply = RecordDict({ARRAYS: ArrayRecord.from_torch_state_dict(result.weights), METRICS: metrics})
    return Message(content=reply, reply_to=msg)


def _load_state(context: Context) -> ClientState | None:
    if STATE_KEY not in context.state:
        return None
    return pickle.loads(context.state[STATE_KEY]["blob"])


def _save_state(context: Context, state: ClientState) -> None:
    # Node-local only (never sent over the network), so pickling our own dataclass is safe here.
    context.state[STATE_KEY] = ConfigRecord({"blob": pickle.dumps(state)})
