"""Data loaders: validated arrays from local files, the Keras cache or a download."""

from datasets.cifar10 import load_cifar10
from datasets.errors import DataError
from datasets.mnist import load_mnist
from datasets.splits import Dataset, Split

__all__ = ["DataError", "Dataset", "Split", "load_cifar10", "load_mnist"]
