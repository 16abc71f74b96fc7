"""`pip install .` gives a working custom_layers package outside this repository."""

import os
import shutil
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_wheel_installs_the_layers_and_they_train(tmp_path):
    wheel_dir, target, source = tmp_path / "wheel", tmp_path / "site", tmp_path / "source"
    leftovers = [os.path.join(ROOT, name) for name in ("build", "custom_layers.egg-info")]
    before = [os.path.exists(path) for path in leftovers]
    # Built from a copy: setuptools leaves build/ and *.egg-info/ beside the sources.
    os.makedirs(source)
    shutil.copytree(os.path.join(ROOT, "custom_layers"), source / "custom_layers",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(wheel_dir), str(source)],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheel_dir.glob("custom_layers-*.whl")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                              "--target", str(target), str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    assert (target / "custom_layers" / "ops" / "convolution.py").exists()
    assert (target / "custom_layers" / "layers" / "conv2d.py").exists()
    script = textwrap.dedent("""
        import sys
        import custom_layers, keras, numpy as np
        assert custom_layers.__file__.startswith(sys.argv[1]), custom_layers.__file__
        model = keras.Sequential([keras.Input((8, 8, 1)), custom_layers.Conv2D(2, 3, activation="relu"),
                                  custom_layers.MaxPooling2D(), keras.layers.Flatten(),
                                  custom_layers.Dense(2, activation="softmax")])
        model.compile("sgd", "sparse_categorical_crossentropy")
        history = model.fit(np.ones((4, 8, 8, 1)), np.array([0, 1, 0, 1]), epochs=2, verbose=0)
        print("trained", len(history.history["loss"]))
    """)
    # Run from an empty folder with only the install target on the path: not this checkout.
    env = dict(os.environ, PYTHONPATH=str(target))
    result = subprocess.run([sys.executable, "-c", script, str(target)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trained 2" in result.stdout
    assert [os.path.exists(path) for path in leftovers] == before  # nothing left in the checkout
