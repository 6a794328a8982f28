"""Helpers that start local services for the tests and the benchmark."""

from __future__ import annotations

from xltools.procs import free_port


def test_free_port_never_hands_out_the_same_port_twice() -> None:
    # The kernel reuses a just-closed ephemeral port readily; a broker given the same port for
    # its plain and TLS listeners failed to start ("Address already in use") in a CI run.
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
