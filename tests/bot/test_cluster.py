"""`make cluster`'s plan: a port for every part, counted from one; a taken one named."""
import socket

import pytest

from bot.cluster import Layout
from bot.launch import PortTaken, refuse_taken
from tests.ports import free_port


def test_every_part_has_a_port_of_its_own_counted_from_the_contracts():
    layout = Layout(8500, replicas=3)

    named = layout.ports()

    assert named["nginx, Rasa"] == 8500 and named["nginx, desks"] == 8502
    assert layout.rasa == [8510, 8511, 8512]
    assert len(set(named.values())) == len(named) == 5 + 3 + 2 + 2


def test_a_taken_port_stops_the_start_naming_what_needs_it():
    layout = Layout(free_port(), replicas=2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", layout.rasa[1]))
        taken.listen()

        with pytest.raises(PortTaken, match=f"port {layout.rasa[1]} \\(rasa server 2\\)"):
            refuse_taken(layout.ports())
