"""Embedding lookup: the NumPy reference and the TF op with a hand-written sparse backward.

y[..., :] = W[ids[...], :]. Row r of dW is the sum of dy over the positions
whose id is r: only the rows the batch looks up, so dW comes back as
``tf.IndexedSlices`` (values dy as (P, D), indices the P ids; repeated ids
are summed by whoever applies them, as for stock's gather gradient).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from custom_layers.ops.custom_op import hand_written_op


def embedding_forward(table: np.ndarray, ids: np.ndarray):
    """table: (V, D); ids: integers of any shape in [-V, V). Returns (ids.shape + (D,), cache)."""
    ids = np.where(ids < 0, ids + table.shape[0], ids)
    return table[ids], (table.shape, ids)


def embedding_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dout: ids.shape + (D,) -> the dense dtable (V, D): dout scattered-added to its ids' rows."""
    shape, ids = cache
    dtable = np.zeros(shape, dout.dtype)
    np.add.at(dtable, ids.reshape(-1), dout.reshape(-1, shape[1]))
    return dtable


def embedding_forward_naive(table: np.ndarray, ids: np.ndarray):
    """``embedding_forward`` by loops over the ids (the test oracle)."""
    flat = ids.reshape(-1)
    out = np.empty((len(flat), table.shape[1]), table.dtype)
    for i, row in enumerate(flat):
        row = row + table.shape[0] if row < 0 else row
        for d in range(table.shape[1]):
            out[i, d] = table[row, d]
    return out.reshape(*ids.shape, table.shape[1]), (table.shape, flat)


def embedding_backward_naive(dout: np.ndarray, cache) -> np.ndarray:
    """Loop form of ``embedding_backward``: each position's dy added to its id's row."""
    shape, flat = cache
    d_rows = dout.reshape(len(flat), shape[1])
    dtable = np.zeros(shape, dout.dtype)
    for i, row in enumerate(flat):
        row = row + shape[0] if row < 0 else row
        for d in range(shape[1]):
            dtable[row, d] += d_rows[i, d]
    return dtable


def embedding(table: tf.Tensor, ids: tf.Tensor, dtype=None) -> tf.Tensor:
    """The rows of ``table`` at ``ids``, with the sparse hand-written gradient.

    Args:
        table: (V, D).
        ids: int32 or int64 ids of any shape, each in [-V, V): a negative id
            counts from the end, as in Keras's ``take`` (TensorFlow's gather
            names any id outside).
        dtype: the output's dtype (the compute dtype under mixed precision);
            the cast is inside the op, so dy is cast back to the table's.

    Returns:
        ids.shape + (D,).
    """
    table, ids = tf.convert_to_tensor(table), tf.convert_to_tensor(ids)
    if table.shape.rank != 2:
        raise ValueError(f"embedding expects a (V, D) table. Received: table.shape={table.shape}")
    if not ids.dtype.is_integer:
        raise ValueError(f"embedding ids must be integers. Received: ids.dtype={ids.dtype.name}")
    dtype = tf.as_dtype(dtype or table.dtype)
    rows = tf.shape(table, out_type=ids.dtype)[0]
    ids = tf.where(ids < 0, ids + rows, ids)

    def forward(table):
        return tf.cast(tf.gather(table, ids), dtype), None

    def backward(dy, _):
        values = tf.reshape(tf.cast(dy, table.dtype), [-1, table.shape[1] or tf.shape(table)[1]])
        return (tf.IndexedSlices(values, tf.reshape(ids, [-1]),
                                 tf.shape(table, out_type=ids.dtype)),)

    return hand_written_op(forward, backward, table)
