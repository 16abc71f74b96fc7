"""The CPU a benchmark ran on, without importing TensorFlow (the PyTorch reference uses it too)."""

from __future__ import annotations

import subprocess


def cpu_description() -> str:
    """lscpu's model name and the SIMD/matrix flags that decide the kernels."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "CPU: unknown (no lscpu)"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    model = fields.get("Model name", "?").strip()
    cpu_flags = set(fields.get("Flags", "").split())
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in cpu_flags]
    return f"CPU: {model}, {fields.get('CPU(s)', '?').strip()} CPUs, flags: {' '.join(shown) or 'none of avx2/avx512/amx'}"
