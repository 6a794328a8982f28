"""`xl-edge check`: one good and one unreachable camera, a damaged model copy and a wrong broker password
are each reported on their own line with a fix, and the exit status is non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLIPS, SHARED
from xltools.broker import provision
from xltools.procs import free_port, start_mosquitto

CONFIG = """\
station: {{id: {station}}}
mqtt: {{host: 127.0.0.1, port: {port}, username: {station}, password: "{password}"}}
outbox: {{path: "{tmp}/outbox/o.sqlite"}}
media: {{dir: "{tmp}/media"}}
cameras:
  - {{id: yard, source: "{clip}"}}
  - {{id: gate, source: "rtsp://admin:hunter2@127.0.0.1:{dead}/Streaming/Channels/102"}}
"""


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("check-broker")
    creds = provision(d / "auth", ["chk-s1"])
    b = start_mosquitto(d, extra_conf=creds.broker_conf())
    yield b, creds
    b.stop()


def run_check(cfg: Path, models: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if models is not None:
        env["XL_MODELS_DIR"] = str(models)
    return subprocess.run([sys.executable, "-m", "edge", "check", "--config", str(cfg), "--timeout", "3"],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip


def test_check_reports_each_problem_on_its_own_line(secured_broker, tmp_path: Path) -> None:
    b, creds = secured_broker
    models = tmp_path / "models"
    models.mkdir()
    good = (SHARED / "models" / "yolox_nano_416_dynbatch.onnx").read_bytes()
    (models / "yolox_nano_416_dynbatch.onnx").write_bytes(good[:-64] + b"\0" * 64)  # a damaged copy
    cfg = tmp_path / "st.yaml"
    cfg.write_text(CONFIG.format(station="chk-s1", port=b.port, password="not-" + creds.users["chk-s1"],
                                 tmp=tmp_path, clip=CLIPS / "campus_pedestrians_vtest.avi", dead=free_port()))  # fmt: skip
    r = run_check(cfg, models)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    problems = [x for x in lines if x.startswith("PROBLEM")]

    def one(*words: str) -> str:
        hits = [x for x in problems if all(w in x for w in words)]
        assert len(hits) == 1, (words, lines)
        assert "-> fix: " in hits[0]
        return hits[0]

    gate = one("camera", "gate:", "cannot open")
    assert "hunter2" not in r.stdout and "admin:***@" in gate  # the camera password is never printed
    one("model", str(models / "yolox_nano_416_dynbatch.onnx"), "sha256", "fetch_models")
    # Mosquitto answers "Not authorized" (135) to a wrong password under MQTT 5; 134 elsewhere.
    broker = one("broker", "chk-s1", "MQTT reason code 13")
    assert "password" in broker.split("-> fix:")[1]
    assert any(x.startswith("ok") and "camera  yard:" in x and "768x576" in x for x in lines), lines
    assert len(problems) == 3, problems
    assert lines[-1] == "xl-edge check: 3 problem(s)"

    # The same box with the right password, a good model and only the good camera: all good, exit 0.
    cfg.write_text(CONFIG.format(station="chk-s1", port=b.port, password=creds.users["chk-s1"], tmp=tmp_path,
                                 clip=CLIPS / "campus_pedestrians_vtest.avi", dead=0).split("  - {id: gate")[0])  # fmt: skip
    r = run_check(cfg)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PROBLEM" not in r.stdout and r.stdout.splitlines()[-1] == "xl-edge check: all good"
