"""Serves the console page; its assets are mounted by the app under ``/static``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent / "static"

router = APIRouter(tags=["console"])


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    # no-cache: a redeploy's page must reach operators whose browsers stay open for days.
    return FileResponse(
        STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
    )
