"""The port a test's server is given: free, and out of the range the kernel hands to outgoing
connections (where a client socket could take it between the pick and the server's bind)."""

from __future__ import annotations

from gateway.ports import _ephemeral_range, free_port, port_taken


def test_free_port_is_below_the_ephemeral_range_and_bindable():
    low, _ = _ephemeral_range()
    ports = {free_port() for _ in range(20)}
    assert all(10_000 <= port < low for port in ports), ports
    for port in ports:
        assert not port_taken("127.0.0.1", port)



def test_free_port_never_gives_a_port_twice_in_a_row():
    """Three servers of one test ask for three ports before any binds: they must all differ."""
    ports = [free_port() for _ in range(1_500)]
    assert len(set(ports)) == len(ports)
