"""Serves the console page and the public's rating page; their assets are mounted under ``/static``."""

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


@router.get("/rate/{rating_code}", include_in_schema=False)
def rating_page(rating_code: str) -> FileResponse:
    """The page a member of the public opens from the case slip (its QR code or link); no login."""
    return FileResponse(STATIC_DIR / "rate.html", media_type="text/html", headers={"Cache-Control": "no-cache"})
