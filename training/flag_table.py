"""The training flags as a Markdown table, generated from ``config.define_flags``.

    python -m training.flag_table

prints the table that ``docs/training.md`` holds between its
``<!-- flag-table -->`` markers (a test keeps the two equal), with each
data set's default and each flag's help text.
"""

from __future__ import annotations

from typing import Dict, List

from absl import flags

from training import config

MARKER = "<!-- flag-table -->"


def _defaults(base: config.TrainConfig) -> Dict[str, flags.Flag]:
    values = flags.FlagValues()
    config.define_flags(base, values)
    return {name: values[name] for name in values}


def _cell(value) -> str:
    if value is None:
        return "—"
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"`{text}`"


def flag_table() -> str:
    """Markdown: flag, MNIST default, CIFAR-10 default, meaning (the flag's help)."""
    mnist, cifar = _defaults(config.MNIST), _defaults(config.CIFAR10)
    rows: List[str] = ["| flag | MNIST default | CIFAR-10 default | meaning |",
                       "|---|---|---|---|"]
    for name, flag in mnist.items():
        meaning = " ".join(flag.help.split())
        choices = getattr(flag.parser, "enum_values", None)
        if choices:  # absl's help starts with "<a|b|c>: "
            meaning = meaning.split(">: ", 1)[-1] + " One of " + ", ".join(
                f"`{c}`" for c in choices) + "."
        meaning = meaning.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
        rows.append(f"| `--{name}` | {_cell(flag.default)} | {_cell(cifar[name].default)} "
                    f"| {meaning} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(flag_table())
