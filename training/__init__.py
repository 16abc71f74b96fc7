"""Everything a training run shares between the MNIST and CIFAR-10 scripts."""

import os

# Before TensorFlow is first imported: keep its C++ INFO/WARNING lines out of
# the progress output (export TF_CPP_MIN_LOG_LEVEL=0 to see them).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
