"""The status page at ``/``: what is served, how fresh it is, what was learned, and a form to
try a prediction. Plain HTML, CSS and JavaScript served by the app itself: no build step, no
CDN, nothing fetched from elsewhere. The page reads the public JSON endpoints (``/v1/model``,
``/v1/models``) and calls ``/v1/predict`` like any client.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")


def add_status_page(app: FastAPI, public: bool) -> None:
    """Serve the page at ``/`` and its assets under ``/static`` (refused when not ``public``)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def status_page() -> Response:
        if not public:
            return JSONResponse(
                {"detail": "the status page is off (STREAMTUNE_PUBLIC_MODEL_INFO=false)"}, status_code=403
            )
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.include_router(router)
    if public:
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
