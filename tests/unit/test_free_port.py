"""The throwaway broker's port is one the kernel never picks as a client's source port."""

import socket

from devtools import mosquitto


def test_ports_come_from_below_the_ephemeral_range() -> None:
    low = mosquitto._ephemeral_low()
    ports = {mosquitto.free_port() for _ in range(50)}
    assert all(10_000 <= port < low for port in ports)
    assert len(ports) > 1  # spread out, so parallel runs rarely even try the same one


def test_a_port_in_use_is_not_handed_out() -> None:
    held = []
    try:
        for _ in range(20):
            sock = socket.socket()
            port = mosquitto.free_port()
            sock.bind(("127.0.0.1", port))  # free when returned: binding it must work
            held.append(sock)
        assert len({s.getsockname()[1] for s in held}) == len(held)
    finally:
        for sock in held:
            sock.close()
