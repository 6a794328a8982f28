"""Composition root of the central service: ``create_app(settings)``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError

from central import db, health
from central.alerts.broadcast import Broadcaster, sse_frame
from central.alerts.router import router as alerts_router
from central.auth.guards import station_staff
from central.auth.router import router as auth_router
from central.auth.service import LoginLimiter, Passwords
from central.clock import Clock, SystemClock
from central.console.router import STATIC_DIR
from central.console.router import router as console_router
from central.dispatch.router import router as orders_router
from central.fleet import models as _fleet_models  # noqa: F401  (registers the tables on Base)
from central.fleet.router import router as fleet_router
from central.incidents.router import router as incidents_router
from central.ingest import AlertIngest
from central.limits import BodyLimit
from central.media import models as _media_models  # noqa: F401  (registers the tables on Base)
from central.media.renditions import Renditions
from central.media.router import router as media_router
from central.metrics import make_registry
from central.metrics import router as metrics_router
from central.models import import_all
from central.notify import Notifier
from central.outage import UNAVAILABLE, DatabaseOutage, is_outage
from central.runtime import DispatchRuntime
from central.settings import CentralSettings
from central.stations.router import router as reference_router
from central.stats.router import router as stats_router
from central.webhooks.router import router as webhooks_router

log = logging.getLogger(__name__)


def create_app(
    settings: CentralSettings | None = None, start_ingest: bool = True, clock: Clock | None = None
) -> FastAPI:
    """Build the app. Settings come from the environment unless given (tests pass their own).

    ``start_ingest=False`` serves the API without an MQTT consumer (API tests, read-only replicas).
    ``clock`` defaults to the system clock; tests pass a ``ManualClock`` to move time.
    """
    settings = settings if settings is not None else CentralSettings()
    clock = clock if clock is not None else SystemClock()
    import_all()
    engine = db.make_engine(settings.database_url)
    session_factory = db.make_session_factory(engine)
    broadcaster = Broadcaster()
    notifier = Notifier(broadcaster)
    passwords = Passwords(settings.password_hash_time_cost, settings.password_hash_memory_kib)
    outage = DatabaseOutage()
    runtime = DispatchRuntime(settings, session_factory, clock, notifier, passwords, outage)
    renditions = Renditions(session_factory, settings.media_dir, outage=outage) if settings.clip_renditions else None

    def announce_health(alert: dict) -> None:
        frame = sse_frame("health", json.dumps(alert), event_id=f"h{alert['id']}")
        broadcaster.publish_threadsafe(frame)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(db.migrate, engine)
        await asyncio.to_thread(runtime.prepare)
        settings.media_dir.mkdir(parents=True, exist_ok=True)
        broadcaster.bind(asyncio.get_running_loop())
        runtime.start()
        if renditions is not None:
            await asyncio.to_thread(renditions.start)
        # Each stored alert is grouped into an incident (and its order opened), then announced.
        ingest = AlertIngest(
            settings, session_factory, on_stored=runtime.on_alert_stored, on_health=announce_health,
            on_clip=renditions.wake if renditions is not None else None, outage=outage,
        ) if start_ingest else None  # fmt: skip
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
            await asyncio.to_thread(runtime.stop)
            if renditions is not None:
                await asyncio.to_thread(renditions.stop)
            broadcaster.close()
            engine.dispose()

    app = FastAPI(title="Xueliang central", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.broadcaster = broadcaster
    app.state.ingest = None
    app.state.clock = clock
    app.state.notifier = notifier
    app.state.runtime = runtime
    app.state.retention = runtime.retention
    app.state.renditions = renditions
    app.state.metrics = make_registry(app.state)  # GET /metrics (Prometheus text; no auth: counts only)
    app.state.passwords = passwords
    app.state.db_outage = outage
    app.state.login_limiter = LoginLimiter(settings.login_max_failures, settings.login_window_s)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.exception_handler(DBAPIError)
    async def database_unavailable(_request: Request, exc: DBAPIError) -> JSONResponse:
        if not is_outage(exc):
            raise exc  # a bug, not an outage: the server's 500 and its trace
        outage.failed("API", exc)
        body = {"detail": UNAVAILABLE, "code": "database_unavailable"}  # the console shows its own words
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})

    app.include_router(health.router)
    app.include_router(metrics_router)
    app.include_router(auth_router)
    app.include_router(alerts_router)
    app.include_router(incidents_router)
    app.include_router(orders_router)
    app.include_router(reference_router)
    app.include_router(stats_router)
    app.include_router(webhooks_router)
    # Fleet and media routes take no principal themselves: the guard checks role and station.
    app.include_router(fleet_router, dependencies=[Depends(station_staff)])
    app.include_router(media_router, dependencies=[Depends(station_staff)])
    app.include_router(console_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
