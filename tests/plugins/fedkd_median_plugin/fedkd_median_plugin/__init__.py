"""Coordinate-wise median of the clients' weights (Yin et al., 2018): robust to a minority of bad clients."""

from flwr.serverapp.strategy import FedMedian

from fedkd_strategies.fedavg import FedAvg, OrderedReplies


class _OrderedFedMedian(OrderedReplies, FedMedian):
    pass


class FedMedianStrategy(FedAvg):
    """FedAvg's round with the median in place of the weighted mean."""

    flower_class = _OrderedFedMedian
