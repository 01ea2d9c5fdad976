"""Shed at the door: refuse a scoring request on its headers and the queue's state, before its
body is parsed, validated or tokenized.

Under 2x overload about half the requests are refused. Refused after parsing, each still costs
the event loop its JSON decoding and validation, CPU the workers' forward passes need, and its
answer waits behind the parsing of everyone else's. At the door the refusal costs reading the
raw body (so the connection stays usable) and one small JSON answer. The request's size is not
known yet, so the door asks for one instance; a request admitted here is checked again with its
real size once parsed (:meth:`~streamtune.inference.batching.DynamicBatcher.score`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from streamtune.inference.admission import ShedError


@dataclass(frozen=True)
class GatedRoute:
    """What the latency metric names a request shed at the door (its route's template)."""

    path: str


@dataclass(frozen=True)
class DoorPolicy:
    """What the door asks and whom it tells.

    Parameters
    ----------
    routes
        Exact paths whose POSTs are gated, each with its route's template (the metric label).
    admit
        ``admit(client, deadline_s)`` raises a :class:`ShedError` to refuse, else returns.
    client_of, deadline_of
        The client's id and its deadline in seconds, read from the headers (and the scope).
    on_shed
        Told the reason of each refusal (the rejected-requests metric).
    """

    routes: Mapping[str, str]
    admit: Callable[[str, float | None], None]
    client_of: Callable[[Headers, Scope], str]
    deadline_of: Callable[[Headers], float | None]
    on_shed: Callable[[str], object]


class AdmissionGate:
    """ASGI middleware: a POST to one of the policy's routes is refused here, with its status
    and ``Retry-After``, when the policy's ``admit`` refuses it; otherwise it passes on."""

    def __init__(self, app: ASGIApp, policy: DoorPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        policy = self.policy
        template = policy.routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        if template is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            policy.admit(policy.client_of(headers, scope), policy.deadline_of(headers))
        except ShedError as error:
            scope["route"] = GatedRoute(template)  # the latency metric's label, as if routed
            policy.on_shed(error.reason)
            await _drain(receive)
            await _refuse(send, error)
            return
        await self.app(scope, receive, send)


async def _drain(receive: Receive) -> None:
    """Read the raw body unparsed: answering before it is read would leave it to be taken for
    the connection's next request. The body limits are enforced further in; the door only
    refuses, so an oversized body is read here in chunks and dropped."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _refuse(send: Send, error: ShedError) -> None:
    payload = json.dumps({"detail": str(error)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"retry-after", str(error.retry_after_s).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
