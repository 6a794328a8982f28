"""Model manifest and weight lookup: $XL_MODELS_DIR, models/, the installed data dir, ../shared/models."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from edge.errors import ModelError

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST_PATH = REPO_ROOT / "models" / "manifest.yaml"
# Where scripts/install-edge puts the weights (its PREFIX_VAR/models). Searched so that `xl-edge check`
# or `run` typed by hand on an installed box finds what the service (which sets $XL_MODELS_DIR) finds.
INSTALLED_MODELS_DIR = Path("/var/lib/xueliang/models")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    file: str
    sha256: str
    input_size: tuple[int, int]  # (width, height)
    output_format: str
    labels: str
    licence: str
    url: str
    upstream_file: str | None = None
    upstream_sha256: str | None = None
    flexible_input: bool = False  # fully convolutional: any input size in multiples of 32
    int8_file: str | None = None  # built here by scripts/build-int8 (not downloaded, no fixed sha256)


@dataclass(frozen=True)
class ResolvedModel:
    spec: ModelSpec
    path: Path
    labels: tuple[str, ...]


def search_dirs() -> list[Path]:
    dirs = []
    if env := os.environ.get("XL_MODELS_DIR"):
        dirs.append(Path(env))
    dirs += [REPO_ROOT / "models", INSTALLED_MODELS_DIR, REPO_ROOT.parent / "shared" / "models"]
    return dirs


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(path: Path = MANIFEST_PATH) -> tuple[dict[str, ModelSpec], dict[str, dict]]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    specs = {}
    for name, m in raw["models"].items():
        specs[name] = ModelSpec(
            name=name,
            file=m["file"],
            sha256=m["sha256"],
            input_size=(int(m["input_size"][0]), int(m["input_size"][1])),
            output_format=m["output_format"],
            labels=m["labels"],
            licence=m.get("licence", ""),
            url=m.get("url", ""),
            upstream_file=m.get("upstream_file"),
            upstream_sha256=m.get("upstream_sha256"),
            flexible_input=bool(m.get("flexible_input", False)),
            int8_file=m.get("int8_file"),
        )
    return specs, raw["labels"]


def _find(candidates: list[tuple[str, str]], what: str) -> Path:
    """First file of ``candidates`` (file, sha256), in preference order, found with a good checksum."""
    dirs = search_dirs()
    wrong: list[str] = []
    for file, sha256 in candidates:
        for d in dirs:
            p = d / file
            if p.is_file():
                actual = sha256_file(p)
                if actual == sha256:
                    return p
                wrong.append(f"{p} (sha256 {actual[:12]}..., expected {sha256[:12]}...)")
    names = " or ".join(f for f, _ in candidates)
    where = ", ".join(str(d) for d in dirs)
    if wrong:
        raise ModelError(
            f"{what} {names}: found only with the wrong checksum: {'; '.join(wrong)}. "
            f"Delete it and run `scripts/fetch_models` to download a good copy."
        )
    raise ModelError(
        f"{what} {names} not found in: {where}. Run `scripts/fetch_models` (needs internet) to download "
        f"it into models/, or set XL_MODELS_DIR to a folder that holds it."
    )


def resolve_model(name: str) -> ResolvedModel:
    """Find a model's weights and labels, verifying both checksums."""
    specs, labels = load_manifest()
    if name not in specs:
        raise ModelError(f"unknown model {name!r}; the manifest {MANIFEST_PATH} lists {sorted(specs)}")
    spec = specs[name]
    candidates = [(spec.file, spec.sha256)]
    if spec.upstream_file and spec.upstream_sha256:
        candidates.append((spec.upstream_file, spec.upstream_sha256))
    path = _find(candidates, f"model {name!r}: weights file")
    lab = labels[spec.labels]
    lab_path = _find([(lab["file"], lab["sha256"])], f"model {name!r}: labels file")
    names = tuple(line.strip() for line in lab_path.read_text().splitlines() if line.strip())
    return ResolvedModel(spec=spec, path=path, labels=names)
