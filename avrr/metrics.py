"""Gauges for the action server's and the desk's /metrics, written by prometheus-client.

Each scrape reads its values from the database at that moment: several processes share
the numbers, so none keeps them in memory. `exposition` puts one scrape's values in a
registry of their own and lets prometheus-client write the text format (its escaping,
its number format).
"""
from typing import Iterable, Iterator, List, Mapping, Sequence, Tuple, Union

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

# A gauge: its name, what it means, and its value, or its values by their labels.
Gauge = Tuple[str, str, Union[float, Sequence[Tuple[Mapping[str, str], float]]]]
# The text format every Prometheus reads (prometheus-client's newest is 1.0.0).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class Snapshot:
    """A collector of values read once, for one scrape."""

    def __init__(self, gauges: Iterable[Gauge]) -> None:
        self.gauges: List[Gauge] = list(gauges)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, meaning, value in self.gauges:
            if isinstance(value, int | float):
                yield GaugeMetricFamily(name, meaning, value=value)
                continue
            labelled = list(value)
            label_names = sorted(labelled[0][0]) if labelled else []
            family = GaugeMetricFamily(name, meaning, labels=label_names)
            for labels, number in labelled:
                family.add_metric([labels[label] for label in label_names], number)
            yield family


def exposition(gauges: Iterable[Gauge]) -> str:
    """`gauges` in Prometheus' text format."""
    registry = CollectorRegistry()
    registry.register(Snapshot(gauges))
    return generate_latest(registry).decode("utf-8")
