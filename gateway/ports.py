"""Checks on this machine's ports, shared by the commands that listen (``smslab serve``,
``smslab carrier``)."""

from __future__ import annotations

import collections
import random
import socket
from pathlib import Path


def port_taken(host: str, port: int) -> bool:
    """Whether something already listens on host:port (checked before anything is printed, so a
    second ``smslab serve`` or ``smslab carrier`` says so in one line instead of a traceback
    after its token)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    for family, socktype, proto, _, addr in infos:
        with socket.socket(family, socktype, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(addr)
            except OSError:
                return True
    return False


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


_GIVEN: collections.deque[int] = collections.deque(maxlen=2_000)  # the ports this process was given last


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, for a server a test starts a moment later.

    Chosen below the kernel's ephemeral range on purpose. A port the OS hands out for port 0 comes
    from that range, which is also where every outgoing connection gets its local port: between
    the pick and the server's bind, a client socket of the same test (a carrier pushing receipts,
    a pool opening connections) can take it, and the server fails with "address already in use"
    (a CI run lost a test so). Below the range only another explicit pick can collide, and the
    port is checked bindable here. Where the range leaves no room below it, the OS picks."""
    low, _ = _ephemeral_range()
    first = 10_000
    if low - first >= 1_000:
        rng = random.SystemRandom()
        for _ in range(50):
            port = rng.randrange(first, low)
            if port in _GIVEN:  # picked a moment ago for another server of the same test, not yet bound
                continue
            with socket.socket() as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _GIVEN.append(port)
            return port
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
