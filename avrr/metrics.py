"""Gauges in Prometheus' text format, for the action server's and the desk's /metrics."""
from typing import Iterable, Mapping, Sequence, Tuple, Union

# A gauge: its name, what it means, and its value, or its values by one label's value.
Gauge = Tuple[str, str, Union[float, Sequence[Tuple[Mapping[str, str], float]]]]
CONTENT_TYPE = "text/plain; version=0.0.4"


def exposition(gauges: Iterable[Gauge]) -> str:
    lines = []
    for name, meaning, value in gauges:
        lines += [f"# HELP {name} {meaning}", f"# TYPE {name} gauge"]
        if isinstance(value, int | float):
            lines.append(f"{name} {_number(value)}")
            continue
        for labels, number in value:
            pairs = ",".join(f'{key}="{label}"' for key, label in sorted(labels.items()))
            lines.append(f"{name}{{{pairs}}} {_number(number)}")
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))
