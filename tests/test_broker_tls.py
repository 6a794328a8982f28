"""TLS to the broker: the station link and the central ingest connect through a TLS listener."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from central.app import create_app
from edge.config import TlsConfig
from tests.authkit import AUTH
from tests.linkkit import central_settings, health, make_alert, make_link, station_id, wait_for
from xltools.procs import free_port, start_mosquitto


def _certs(d: Path) -> tuple[Path, Path, Path]:
    ossl = shutil.which("openssl")
    if ossl is None:
        pytest.skip("openssl not installed")
    ca_key, ca, key, csr, crt = (d / n for n in ("ca.key", "ca.crt", "srv.key", "srv.csr", "srv.crt"))
    run = lambda *a: subprocess.run([ossl, *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=xl-test-ca",
        "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(csr))
    ext = d / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2",
        "-extfile", str(ext), "-out", str(crt))  # fmt: skip
    return ca, crt, key


def test_link_and_ingest_work_over_tls(tmp_path: Path) -> None:
    ca, crt, key = _certs(tmp_path)
    port = free_port()
    # start_mosquitto's plain listener stays; the TLS listener is the one both sides use.
    b = start_mosquitto(tmp_path / "b", extra_conf=(
        f"per_listener_settings false\nlistener {port} 127.0.0.1\ncafile {ca}\ncertfile {crt}\nkeyfile {key}\n"
    ))  # fmt: skip
    try:
        settings = central_settings("127.0.0.1", port, tmp_path, mqtt_tls=True, mqtt_tls_ca_file=str(ca))
        with TestClient(create_app(settings), headers=AUTH) as central:
            wait_for(lambda: health(central)["mqtt_connected"], "central over TLS")
            st = station_id()
            link = make_link("127.0.0.1", port, st, tmp_path / "o.sqlite", tls=TlsConfig(ca_file=str(ca)))
            link.start()
            try:
                link.submit_event(make_alert(st))
                wait_for(lambda: link.counters.acked == 1, "the alert acked over TLS")
            finally:
                link.stop()
    finally:
        b.stop()
