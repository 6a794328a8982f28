"""Bad input names the file and the field, and says how to fix it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import load_station_config
from edge.errors import ConfigError, ModelError
from edge.models import resolve_model

GOOD = """\
station: {id: s1}
cameras:
  - id: cam1
    source: clip.mp4
    zones:
      - id: lawn
        points: [[0, 0.5], [1, 0.5], [1, 1]]
    rules:
      - {id: r1, zone: lawn, classes: [person]}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "station.yaml"
    p.write_text(text)
    return p


def test_good_config_resolves_relative_sources(tmp_path) -> None:
    cfg = load_station_config(write(tmp_path, GOOD))
    assert cfg.cameras[0].source == str(tmp_path / "clip.mp4")
    assert cfg.cameras[0].detect_fps == 5.0


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("    source: clip.mp4", "    source: clip.mp4\n    colour: red", "cameras.0.colour: unknown key"),
        ("[[0, 0.5], [1, 0.5], [1, 1]]", "[[0, 0.5], [1, 0.5]]", "cameras.0.zones.0.points"),
        ("[[0, 0.5], [1, 0.5], [1, 1]]", "[[0, 0.5], [1, 1.5], [1, 1]]", "cameras.0.zones.0.points.1.1"),
        ("zone: lawn", "zone: road", "rule 'r1' names zone 'road'"),
        ("station: {id: s1}", "station: {id: 's 1'}", "station.id"),
        ("station: {id: s1}", "stations: {id: s1}", "stations: unknown key"),
        ("    source: clip.mp4", "    source: clip.mp4\n    record_source: main.mp4\n    realtime: false",
         "cameras.0: Value error, a file record_source is replayed at real time"),
    ],
)
def test_errors_name_file_and_field(tmp_path, old, new, field) -> None:
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_station_config(path)
    assert str(path) in str(err.value)
    assert field in str(err.value)


def test_missing_config_and_bad_yaml(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_station_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_station_config(write(tmp_path, "station: [unclosed"))


def test_missing_model_says_where_it_looked_and_how_to_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("edge.models.search_dirs", lambda: [tmp_path])
    with pytest.raises(ModelError) as err:
        resolve_model("yolox_nano_416")
    msg = str(err.value)
    assert "yolox_nano_416_dynbatch.onnx" in msg and str(tmp_path) in msg and "scripts/fetch_models" in msg


def test_wrong_checksum_is_refused(tmp_path, monkeypatch) -> None:
    (tmp_path / "yolox_nano_416_dynbatch.onnx").write_bytes(b"not a model")
    monkeypatch.setattr("edge.models.search_dirs", lambda: [tmp_path])
    with pytest.raises(ModelError, match="wrong checksum"):
        resolve_model("yolox_nano_416")


def test_models_dir_env_is_searched_first(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XL_MODELS_DIR", str(tmp_path))
    from edge.models import search_dirs

    assert search_dirs()[0] == tmp_path


def test_an_installed_box_finds_the_weights_in_its_data_dir(tmp_path, monkeypatch) -> None:
    """`xl-edge check` or `run` typed by hand (no $XL_MODELS_DIR, which only the unit sets) on a box
    set up by scripts/install-edge: the app's models/ has no weights and no ../shared is beside it."""
    import edge.models

    specs, labels = edge.models.load_manifest()
    spec = specs["yolox_nano_416"]
    shared = edge.models.search_dirs()[-1]
    data = tmp_path / "var/lib/xueliang/models"
    data.mkdir(parents=True)
    for name in (spec.file, labels[spec.labels]["file"]):
        shutil.copy(shared / name, data / name)
    monkeypatch.delenv("XL_MODELS_DIR", raising=False)
    monkeypatch.setattr(edge.models, "REPO_ROOT", tmp_path / "opt/xueliang/app")
    monkeypatch.setattr(edge.models, "INSTALLED_MODELS_DIR", data)
    assert resolve_model("yolox_nano_416").path == data / spec.file


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=120)


def test_cli_reports_config_error_without_traceback(tmp_path) -> None:
    path = write(tmp_path, GOOD.replace("[[0, 0.5], [1, 0.5], [1, 1]]", "[[0, 0.5], [1, 0.5]]"))
    r = run_cli("replay", "whatever.mp4", "--config", str(path))
    assert r.returncode == 2
    assert str(path) in r.stderr and "cameras.0.zones.0.points" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_reports_missing_clip(tmp_path) -> None:
    path = write(tmp_path, GOOD)
    r = run_cli("replay", str(tmp_path / "missing.mp4"), "--config", str(path))
    assert r.returncode == 2
    assert "missing.mp4" in r.stderr and "not found" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("run", "--config", str(path))
    assert r.returncode == 2 and "clip.mp4" in r.stderr and "cameras[cam1].source" in r.stderr
