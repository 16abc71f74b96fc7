"""Every model the apps train, saved as model.keras, loads with only ``import custom_layers``."""

import os
import subprocess
import sys

import numpy as np

import models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOADER = """
import sys, numpy as np, keras
import custom_layers  # the only project import: it registers every layer
for path in sys.argv[1:]:
    model = keras.models.load_model(path + ".keras")
    x = np.load(path + ".x.npy")
    np.testing.assert_allclose(model.predict(x, verbose=0), np.load(path + ".y.npy"), rtol=1e-5,
                               atol=1e-6)
    print("loaded", path)
"""


def test_every_model_loads_in_a_fresh_process_with_only_custom_layers(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(2, 32, 32, 3)).astype(np.float32)
    paths = []
    for name in models.MODEL_NAMES:
        if name.startswith("resnet") and name != "resnet20":
            continue  # the deeper ResNets are ResNet-20 with more blocks
        model = models.build_model(name, input_shape=(32, 32, 3), num_classes=10,
                                   **({"dropout_rate": 0.0} if not models.MODELS[name].has_dropout else {}))
        path = str(tmp_path / name)
        model.save(path + ".keras")
        np.save(path + ".x.npy", x)
        np.save(path + ".y.npy", model.predict(x, verbose=0))
        paths.append(path)
    # A fresh process, outside the project: nothing but the installed package path.
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", LOADER, *paths], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("loaded") == len(paths) >= 4
