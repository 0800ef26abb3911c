"""Datasets (built-in offline sets and local-file loaders) and federated partitioners."""

from fedkd.data.datasets import DATASETS, ImageDataset, load_dataset, register_dataset
from fedkd.data.partition import partition, partition_summary

__all__ = ["DATASETS", "ImageDataset", "load_dataset", "partition", "partition_summary", "register_dataset"]
