"""The agent's process-wide memory settings."""

from __future__ import annotations

import ctypes
import platform

import pytest

from edge import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_malloc_is_tuned_on_glibc() -> None:
    assert memory.tune_malloc() is True


def test_a_libc_without_mallopt_is_left_alone(monkeypatch) -> None:
    def no_libc(*_a, **_k):
        raise OSError("no such library")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert memory.tune_malloc() is False
