"""What a finished run leaves behind: test metrics, pictures, exported models, the summary line."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import keras
import numpy as np
import tensorflow as tf

from datasets import pipeline
from datasets.splits import Dataset
from training import plots, tta
from training.run_folder import RunFolder

SAMPLE_IMAGES = 16
_CLOCK_TICKS = 100  # Linux reports process start in USER_HZ, 100 on every mainstream kernel


_runs_begun = 0


def run_wall_clock() -> Callable[[], float]:
    """A clock of the run starting now: seconds since the process started for the
    process's first run (imports count, as for a user's command), since now for a
    later one (several runs in one process, as ``benchmarks.cifar_recipe``)."""
    global _runs_begun
    origin = process_wall_seconds() if _runs_begun else 0.0
    _runs_begun += 1
    return lambda: process_wall_seconds() - origin


def process_wall_seconds() -> float:
    """Seconds since this process started (imports included), from /proc; NaN elsewhere."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / _CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return float("nan")


def evaluate(model: keras.Model, data: Dataset, batch_size: int,
             tta_level: str = "none") -> Dict[str, Any]:
    """Test loss, accuracy, predictions and confusion matrix (with test-time
    augmentation), and the accuracy on the plain images (what TTA adds)."""
    test = pipeline.eval_dataset(data.test, batch_size, data.normalization)
    probabilities, plain = tta.predict(model, test.map(lambda x, y: x), tta_level)
    predictions = np.argmax(probabilities, axis=1)
    labels = data.test.labels
    eps = 1e-7
    picked = probabilities[np.arange(len(labels)), labels]
    return {
        "test_loss": float(-np.mean(np.log(np.clip(picked, eps, 1.0)))),
        "test_accuracy": float(np.mean(predictions == labels)),
        "test_accuracy_without_tta": float(np.mean(np.argmax(plain, axis=1) == labels)),
        "predictions": predictions,
        "confusion_matrix": plots.confusion_matrix(labels, predictions, len(data.class_names)),
    }


def write_pictures(model: keras.Model, data: Dataset, results: Dict[str, Any],
                   history: List[Dict], folder: RunFolder, writers: Dict[str, Any], step: int) -> None:
    """PNG files in the run folder and the same images in TensorBoard.

    Training curves and filters go to the ``train`` run, what the test set
    shows (confusion matrix, sample predictions) to the ``test`` run.
    """
    first_kernel = next(layer.weights[0] for layer in model.layers
                        if layer.weights and len(layer.weights[0].shape) == 4)
    images = pipeline.as_float(data.test.images, SAMPLE_IMAGES)
    figures = {
        "train": {
            "training_curves": plots.training_curves(history),
            "filters": plots.filter_grid(np.asarray(first_kernel.numpy())),
        },
        "test": {
            "confusion_matrix": plots.confusion_matrix_figure(results["confusion_matrix"],
                                                              data.class_names),
            "predictions": plots.sample_predictions(
                images, data.test.labels[:SAMPLE_IMAGES], results["predictions"][:SAMPLE_IMAGES],
                data.class_names),
        },
    }
    for run, named in figures.items():
        with writers[run].as_default(step=step):
            for name, fig in named.items():
                png = plots.png_bytes(fig)
                folder.write_bytes(f"{name}.png", png)
                tf.summary.image(name, tf.image.decode_png(png)[None])


def write_test_scalars(writer, metrics: Dict[str, Any], step: int) -> None:
    with writer.as_default(step=step):
        tf.summary.scalar("loss", metrics["test_loss"])
        tf.summary.scalar("accuracy", metrics["test_accuracy"])


def export(model: keras.Model, folder: RunFolder, savedmodel: bool) -> None:
    folder.save_model(model)
    if savedmodel:
        folder.export_savedmodel(model)


def summary_line(metrics: Dict[str, Any]) -> str:
    return (f"test_accuracy={metrics['test_accuracy']:.4f} test_loss={metrics['test_loss']:.4f} "
            f"steps={metrics['steps']} train_seconds={metrics['train_seconds']:.1f} "
            f"wall_seconds={metrics['wall_seconds']:.1f}")

