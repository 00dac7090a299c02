"""The FastAPI application: routers, storage, the schema check and the sweeper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from app.api.errors import register as register_error_handlers
from app.artifacts.storage import Storage
from app.artifacts.views import router as artifacts_router
from app.audits.sweeper import Sweeper
from app.audits.views import router as audits_router
from app.canaries.views import router as canaries_router
from app.core.config import get_settings
from app.core.migrate import check_schema
from app.dashboard.views import router as dashboard_router
from app.health import router as health_router
from app.policies.views import router as policies_router
from app.splits.views import router as splits_router
from app.webhooks.views import router as webhooks_router


def create_app(*, run_sweeper: bool | None = None) -> FastAPI:
    """Build the app from the environment's settings (LEAKGATE_*); the sweeper thread runs when
    `run_sweeper` says so, else when `LEAKGATE_API_SWEEPER` does."""
    settings = get_settings()
    if run_sweeper is None:
        run_sweeper = settings.api_sweeper

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_schema()
        sweeper = Sweeper(settings) if run_sweeper else None
        if sweeper:
            sweeper.start()
        yield
        if sweeper:
            sweeper.stop()

    # Swagger UI and ReDoc from assets packaged with fastapi-offline: /docs works without
    # internet (the stock pages load them from a CDN).
    app = FastAPIOffline(
        static_url="/docs-assets",
        title="leakgate",
        version="0.1.0",
        summary="Audit a trained model for training-data leakage before it is released.",
        lifespan=lifespan,
    )
    settings.ensure_dirs()
    assert settings.storage_dir is not None
    app.state.storage = Storage(settings.storage_dir)
    app.state.settings = settings
    register_error_handlers(app)
    app.include_router(health_router)
    app.include_router(artifacts_router)
    app.include_router(audits_router)
    app.include_router(canaries_router)
    app.include_router(splits_router)
    app.include_router(policies_router)
    app.include_router(webhooks_router)
    app.include_router(dashboard_router)
    return app
