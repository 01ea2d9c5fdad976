"""The admin API: pin this replica to a version, unpin it, list the store's versions.

Guarded by a bearer token (``STREAMTUNE_ADMIN_TOKEN``), compared in constant time; without a
configured token every admin endpoint answers 403. The token is never logged.

A pin is held by this replica only (in its follower) and is lost on restart: pinning every
replica means calling each one. The cluster-wide rollback is moving the store's LATEST pointer
(``streamtune rollback --to N``, i.e. ``CheckpointStore.rollback``), which every replica follows.

No ``from __future__ import annotations``: FastAPI evaluates the dependency's annotation, which
names a local.
"""

import asyncio
import hmac
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from streamtune.checkpoints import CheckpointStore
from streamtune.errors import CheckpointError, ModelLoadError
from streamtune.inference.follower import VersionFollower
from streamtune.inference.loading import ServedModel
from streamtune.inference.schemas import ModelsResponse, PinRequest, PinResponse, VersionEntry
from streamtune.inference.slot import ModelSlot
from streamtune.metrics import ServingMetrics

logger = logging.getLogger(__name__)


def bearer_guard(token: str | None) -> Callable[..., None]:
    """A dependency admitting only requests that carry ``token`` as their bearer token."""
    expected = token.encode() if token else None
    scheme = HTTPBearer(auto_error=False, description="The value of STREAMTUNE_ADMIN_TOKEN")

    def require_admin(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scheme)]) -> None:
        if expected is None:
            raise HTTPException(403, "the admin API is disabled: set STREAMTUNE_ADMIN_TOKEN to enable it")
        if credentials is None:
            raise HTTPException(401, "admin endpoints need a bearer token", headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(credentials.credentials.encode(), expected):
            raise HTTPException(403, "the bearer token is not valid")

    return require_admin


class Pinning:
    """Pin and unpin one replica, serialised so that concurrent admin calls cannot interleave."""

    def __init__(self, store: CheckpointStore, slot: ModelSlot[ServedModel], metrics: ServingMetrics) -> None:
        self._store = store
        self._slot = slot
        self._metrics = metrics
        self._lock = threading.Lock()

    def pin(self, follower: VersionFollower, version: int) -> ServedModel:
        """Serve ``version`` and keep serving it; raises :class:`HTTPException` 404/409 and
        leaves the served version and the previous pin as they were when it cannot be loaded."""
        with self._lock:
            if version != 0 and version not in self._store.versions():
                raise HTTPException(404, f"version {version} does not exist in the store")
            previous = follower.pinned
            follower.pinned = version  # first, so the follower does not swap away meanwhile
            try:
                served = self._slot.swap_to(version)
            except ModelLoadError as error:
                follower.pinned = previous
                serving = self._slot.current.version if self._slot.current else None
                raise HTTPException(
                    409, f"version {version} cannot be served ({error}); still serving version {serving}"
                ) from None
            self._metrics.pinned_model_version.set(version)
            logger.info("pinned to version %d (was %s)", version, previous)
            return served

    def unpin(self, follower: VersionFollower) -> ServedModel | None:
        """Follow LATEST again, swapping to it now."""
        with self._lock:
            previous, follower.pinned = follower.pinned, None
            self._metrics.pinned_model_version.set(-1)
            self._slot.ensure(follower.target_version())
            logger.info("unpinned (was pinned to %s)", previous)
            return self._slot.current

    def listing(self, follower: VersionFollower | None) -> ModelsResponse:
        entries = []
        for version in self._store.versions():
            try:
                entries.append(VersionEntry(version=version, manifest=asdict(self._store.read_manifest(version))))
            except CheckpointError as error:
                entries.append(VersionEntry(version=version, manifest=None, error=str(error)))
        served, swap = self._slot.current, self._slot.last_swap
        return ModelsResponse(
            serving=served.version if served else None,
            pinned=follower.pinned if follower else None,
            latest=self._store.latest_version(),
            last_swap=asdict(swap) if swap else None,
            versions=entries,
        )


def admin_router(
    pinning: Pinning, follower: Callable[[], VersionFollower | None], token: str | None, public_listing: bool = False
) -> APIRouter:
    """Routes of the admin API; ``follower`` returns the running follower (None before start).
    With ``public_listing``, ``GET /v1/models`` (read-only) needs no token; changes always do."""
    guard = Depends(bearer_guard(token))
    router = APIRouter(tags=["admin"])
    unauthorized = {401: {"description": "No bearer token"}, 403: {"description": "Admin API disabled or bad token"}}

    def running_follower() -> VersionFollower:
        found = follower()
        if found is None:
            raise HTTPException(503, "this replica does not follow a store", headers={"Retry-After": "1"})
        return found

    @router.post(
        "/v1/admin/pin",
        dependencies=[guard],
        response_model=PinResponse,
        responses={**unauthorized, 404: {"description": "No such version"}, 409: {"description": "Refused"}},
    )
    async def pin(body: PinRequest) -> PinResponse:
        """Serve this version on this replica until unpinned (the pin is not shared)."""
        served = await asyncio.to_thread(pinning.pin, running_follower(), body.version)
        return PinResponse(model_version=served.version, pinned=body.version)

    @router.post("/v1/admin/unpin", dependencies=[guard], response_model=PinResponse, responses=unauthorized)
    async def unpin() -> PinResponse:
        """Follow the store's LATEST version again."""
        served = await asyncio.to_thread(pinning.unpin, running_follower())
        return PinResponse(model_version=served.version if served else None, pinned=None)

    @router.get(
        "/v1/models",
        dependencies=[] if public_listing else [guard],
        response_model=ModelsResponse,
        responses={} if public_listing else unauthorized,
    )
    async def models() -> ModelsResponse:
        """The store's versions with their manifests (and training metrics), and this replica's state."""
        return await asyncio.to_thread(pinning.listing, follower())

    return router
