"""Composition root of the central service: ``create_app(settings)``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from central import db, health
from central.alerts import models as _alert_models  # noqa: F401  (registers the table on Base)
from central.alerts.broadcast import Broadcaster, sse_frame
from central.alerts.router import router as alerts_router
from central.alerts.schemas import AlertOut
from central.console.router import STATIC_DIR
from central.console.router import router as console_router
from central.fleet import models as _fleet_models  # noqa: F401  (registers the tables on Base)
from central.fleet.router import router as fleet_router
from central.ingest import AlertIngest
from central.media import models as _media_models  # noqa: F401  (registers the tables on Base)
from central.media.router import router as media_router
from central.settings import CentralSettings

log = logging.getLogger(__name__)


def create_app(settings: CentralSettings | None = None, start_ingest: bool = True) -> FastAPI:
    """Build the app. Settings come from the environment unless given (tests pass their own).

    ``start_ingest=False`` serves the API without an MQTT consumer (API tests, read-only replicas).
    """
    settings = settings if settings is not None else CentralSettings()
    engine = db.make_engine(settings.database_url)
    session_factory = db.make_session_factory(engine)
    broadcaster = Broadcaster()

    def announce(alert: AlertOut) -> None:
        broadcaster.publish_threadsafe(sse_frame("alert", alert.model_dump_json(), event_id=str(alert.id)))

    def announce_health(alert: dict) -> None:
        frame = sse_frame("health", json.dumps(alert), event_id=f"h{alert['id']}")
        broadcaster.publish_threadsafe(frame)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db.create_all(engine)
        settings.media_dir.mkdir(parents=True, exist_ok=True)
        broadcaster.bind(asyncio.get_running_loop())
        ingest = AlertIngest(settings, session_factory, on_stored=announce, on_health=announce_health) if start_ingest else None
        app.state.ingest = ingest
        if ingest is not None:
            ingest.start()
        log.info(
            "central: serving (database %s, media %s)", engine.url.render_as_string(), settings.media_dir
        )
        try:
            yield
        finally:
            if ingest is not None:
                # Off the loop: stopping joins threads, and open streams must keep being served.
                await asyncio.to_thread(ingest.stop)
            broadcaster.close()
            engine.dispose()

    app = FastAPI(title="Xueliang central", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.broadcaster = broadcaster
    app.state.ingest = None

    app.include_router(health.router)
    app.include_router(alerts_router)
    app.include_router(fleet_router)
    app.include_router(media_router)
    app.include_router(console_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
