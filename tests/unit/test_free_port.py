"""Ports for isolated platforms: free, distinct, and outside the range outgoing connections take ports from."""

import socket

from twitch_pipeline.platform.process import _ephemeral_low, free_port, port_in_use


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    ports = [free_port() for _ in range(30)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= port < _ephemeral_low() for port in ports)
    assert not any(port_in_use("127.0.0.1", port) for port in ports)


def test_a_port_something_listens_on_is_not_handed_out():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        assert port_in_use("127.0.0.1", taken)
        assert taken not in {free_port() for _ in range(30)}
