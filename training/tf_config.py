"""``TF_CONFIG``, the cluster description of a multi-worker run, checked before
TensorFlow reads it (plain Python: errors come before TensorFlow loads)."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

from training.errors import StrategyError

MAX_TF_CONFIG_CHARS = 1 << 20
MAX_TASKS = 4096


def _address_problem(address: Any) -> str:
    if not isinstance(address, str) or ":" not in address:
        return "is not host:port"
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return "has no port in 1..65535"
    return ""


def parse_tf_config(raw: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """The parsed ``TF_CONFIG`` (the environment's when ``raw`` is None); None if unset.

    Raises:
        StrategyError: naming what is wrong: not a JSON object, a cluster that
            is not lists of host:port, a task whose type is not in the cluster
            or whose index is out of range.
    """
    raw = os.environ.get("TF_CONFIG") if raw is None else raw
    if not raw:
        return None
    if len(raw) > MAX_TF_CONFIG_CHARS:
        raise StrategyError(f"TF_CONFIG is longer than {MAX_TF_CONFIG_CHARS} characters")
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({type(e).__name__}: {str(e)[:80]})") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) \
            or not isinstance(config.get("task"), dict):
        raise StrategyError('TF_CONFIG must be a JSON object with "cluster" and "task" objects')
    cluster, task = config["cluster"], config["task"]
    if not cluster or sum(len(v) if isinstance(v, list) else 0 for v in cluster.values()) > MAX_TASKS:
        raise StrategyError(f"TF_CONFIG's cluster must name 1 to {MAX_TASKS} tasks")
    for kind, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise StrategyError(f'TF_CONFIG cluster "{str(kind)[:40]}" must be a list of host:port')
        for address in addresses:
            problem = _address_problem(address)
            if problem:
                raise StrategyError(f'TF_CONFIG cluster "{str(kind)[:40]}" address '
                                    f"{str(address)[:80]!r} {problem}")
    kind, index = task.get("type"), task.get("index", 0)
    if not isinstance(kind, str) or kind not in cluster:
        raise StrategyError(f'TF_CONFIG task type {str(kind)[:40]!r} is not in its cluster '
                            f"({', '.join(sorted(map(str, cluster))[:8])})")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise StrategyError(f'TF_CONFIG task index {str(index)[:40]} is out of range: cluster '
                            f'"{kind}" has {len(cluster[kind])} tasks')
    return config
