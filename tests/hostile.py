"""Tools for building files meant to hurt a reader, and for running a reader under limits."""

import os
import pickle
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What any hostile-input case may use: far above a legitimate tiny test
# file, far below what the memory bombs would take unchecked.
MEMORY_LIMIT_BYTES = 1 << 30
TIME_LIMIT_SECONDS = 120


class Reduce:
    """Pickles as ``fn(*args)`` followed by ``BUILD state``: any opcode sequence a crafted file can hold."""

    def __init__(self, fn, args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def load_limited(module: str, function: str, path: str):
    """Runs ``datasets.<module>.<function>(path)`` in a child with an address-space limit.

    Returns:
        (outcome, peak_rss_bytes): outcome is "loaded", or "DataError: <message>".
        Anything else (a crash, a traceback, the limit hit) fails the calling test.
    """
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT_BYTES}, {MEMORY_LIMIT_BYTES}))\n"
        "from datasets import DataError\n"
        f"from datasets.{module} import {function}\n"
        "try:\n"
        f"    {function}(sys.argv[1])\n"
        "    outcome = 'loaded'\n"
        "except DataError as e:\n"
        "    outcome = f'DataError: {e}'\n"
        # VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec.
        "peak = [int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(peak)\n"
        "print(outcome)\n"
    )
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", code, path], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=TIME_LIMIT_SECONDS)
    assert result.returncode == 0, (
        f"reader died with exit code {result.returncode}: {result.stderr[-2000:]}")
    peak, outcome = result.stdout.split("\n", 1)
    return outcome.strip(), int(peak)


def dumps(value) -> bytes:
    return pickle.dumps(value, protocol=2)


def run_app(script: str, args, env=None, timeout: float = 300):
    """Runs ``python <script> <args>``; returns (result, peak resident bytes, seconds).

    The peak (VmHWM) is read as the process exits, whatever its exit code.
    """
    import tempfile
    import time

    with tempfile.NamedTemporaryFile("r", suffix=".peak") as peak_file:
        code = (
            "import atexit, runpy, sys\n"
            "peak_path, script, sys.argv = sys.argv[1], sys.argv[2], sys.argv[2:]\n"
            "def _peak():\n"
            "    hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
            "    open(peak_path, 'w').write(hwm[0])\n"
            "atexit.register(_peak)\n"
            "runpy.run_path(script, run_name='__main__')\n"
        )
        start = time.monotonic()
        result = subprocess.run([sys.executable, "-c", code, peak_file.name, script, *args],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        seconds = time.monotonic() - start
        text = peak_file.read().strip()
    return result, int(text) * 1024 if text else 0, seconds
