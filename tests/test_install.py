"""scripts/install-edge and install-central into a test root: idempotent, units accepted by systemd."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.models import INSTALLED_MODELS_DIR
from tests.conftest import ROOT

UNITS = ROOT / "deploy" / "systemd"


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path with its type, mode, size, mtime and (for files outside the venv) content hash."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            digest = ""
            if p.is_file() and not p.is_symlink() and "/venv/" not in f"/{rel}":
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            out[rel] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out


def run(script: str, *args: str) -> str:
    r = subprocess.run([str(ROOT / "scripts" / script), *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("root")
    run("install-edge", "--root", str(root))
    return root


def test_install_edge_twice_gives_the_same_tree(installed: Path) -> None:
    before = snapshot(installed)
    out = run("install-edge", "--root", str(installed))
    assert "app: up to date" in out and "venv: up to date" in out and "config: kept" in out
    assert snapshot(installed) == before
    for rel in ("opt/xueliang/venv/bin/xl-edge", "etc/xueliang/edge.yaml", "etc/systemd/system/xueliang-edge.service",
                "var/lib/xueliang/models/yolox_nano_416_dynbatch.onnx", "var/lib/xueliang/outbox"):  # fmt: skip
        assert (installed / rel).exists(), rel
    # Where the agent looks for weights when run by hand (no $XL_MODELS_DIR) is where they went.
    assert (installed / INSTALLED_MODELS_DIR.relative_to("/") / "yolox_nano_416_dynbatch.onnx").is_file()


def install_lib(snippet: str, **env: str) -> subprocess.CompletedProcess:
    """Run a snippet of bash after sourcing scripts/lib/install.sh, as for a real install (root /)."""
    script = f'set -euo pipefail; . "{ROOT}/scripts/lib/install.sh"; {snippet}'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHON": "", **env})  # fmt: skip


def test_a_python_the_service_cannot_see_is_refused(tmp_path: Path) -> None:
    # pyenv or conda under /root or /home: the unit's ProtectHome=yes hides it, the service would
    # never start. The check runs before anything is built; HIDDEN_DIRS stands in for /root /home.
    home = subprocess.run([sys.executable, "-c", "import os, sys; print(os.path.realpath(sys.base_prefix))"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    refused = install_lib("check_python", PYTHON=sys.executable, HIDDEN_DIRS=f"/nonexistent {home}")
    assert refused.returncode != 0 and "cannot see" in refused.stderr and home in refused.stderr, refused.stderr
    allowed = install_lib("check_python", PYTHON=sys.executable, HIDDEN_DIRS=str(tmp_path))
    assert allowed.returncode == 0, allowed.stderr
    # In a test or image root nothing is hidden yet: the box's install checks its own interpreter.
    assert install_lib(f'ROOT_DIR="{tmp_path}"; check_python', PYTHON=sys.executable, HIDDEN_DIRS=home).returncode == 0


def test_a_real_install_prefers_the_system_python() -> None:
    system_ok = Path("/usr/bin/python3").exists() and subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; sys.exit(sys.version_info < (3, 11))"]).returncode == 0
    picked = install_lib('pick_python; echo "$PYTHON"').stdout.strip()
    assert picked == ("/usr/bin/python3" if system_ok else "python3")
    assert install_lib('ROOT_DIR=/tmp; pick_python; echo "$PYTHON"').stdout.strip() == "python3"
    assert install_lib('pick_python; echo "$PYTHON"', PYTHON="/opt/py/bin/python3").stdout.strip() == "/opt/py/bin/python3"


def test_installed_agent_runs(installed: Path) -> None:
    r = subprocess.run(
        [str(installed / "opt/xueliang/venv/bin/xl-edge"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and "replay" in r.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_units(installed: Path, tmp_path: Path) -> None:
    run("install-central", "--root", str(installed))
    for unit in ("xueliang-edge.service", "xueliang-central.service"):
        text = (installed / "etc/systemd/system" / unit).read_text()
        assert text == (UNITS / unit).read_text()
        # Verify against the binaries of the test root instead of the real /opt.
        local = tmp_path / unit
        local.write_text(text.replace("/opt/xueliang", str(installed / "opt/xueliang")))
        r = subprocess.run(
            ["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
        for key in ("WatchdogSec=" if unit.endswith("edge.service") else "Restart=always", "NoNewPrivileges=yes",
                    "ProtectSystem=strict", "MemoryMax=", "Restart=always"):  # fmt: skip
            assert key in text, (unit, key)


def test_uninstall_keeps_data_unless_purged(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    run("install-edge", "--root", str(root))
    (root / "var/lib/xueliang/media/evidence.mp4").write_bytes(b"x")
    run("install-edge", "--uninstall", "--root", str(root))
    assert not (root / "opt/xueliang").exists()
    assert (root / "var/lib/xueliang/media/evidence.mp4").exists() and (
        root / "etc/xueliang/edge.yaml"
    ).exists()
    run("install-edge", "--uninstall", "--purge", "--root", str(root))
    assert not (root / "var/lib/xueliang").exists() and not (root / "etc/xueliang").exists()
