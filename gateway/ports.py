"""Checks on this machine's ports, shared by the commands that listen (``smslab serve``,
``smslab carrier``)."""

from __future__ import annotations

import socket


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
