"""Server-rendered dashboard of a tenant's audits: one router over its parts.

`rendering` (page frame, cookie auth, CSRF), `auth` (login, logout, static files), `pages` (list,
progress, model, audit, compare, cancel) and `downloads` (CSV, HTML, JSON). Pages are HTML
built from templates in `templates/`; the stylesheet and one small script (live progress,
polling `/dashboard/progress`) are served from `static/`. Without the script, pages in flight
reload themselves.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.dashboard import auth, downloads, pages

router = APIRouter()
for part in (auth, pages, downloads):
    router.include_router(part.router)
