"""An ASGI middleware around the whole api-server that writes the audit trail of requests.

Registered by ``plugins/hisops_plugin.py`` as a ``fastapi_root_middlewares`` entry, so it sees
every request — the REST API, FAB's login and user/role pages and API, and the O&M centre —
including the ones Airflow refuses before any route runs (401/403). What counts as an event is
decided by :func:`hisops.audit.requests.classify`; this module only reads the request and the
response, finds the user from the JWT (Bearer header or the UI's ``_token`` cookie) and appends
to ``audit_event`` after the response has been sent. A failure to write is logged and never
breaks the request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qs

from hisops.audit.requests import CENTRE, MUTATING, ApiAction, classify

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 1 << 20
WATCHED = ("/api/", "/auth/", CENTRE)
TOKEN_COOKIE = "_token"
#: set while a watched request runs: listener hooks fired by it are this middleware's event
_IN_REQUEST: ContextVar[bool] = ContextVar("hisops_audit_in_request", default=False)


def in_api_request() -> bool:
    """True inside a request that this middleware records (the listener then stays silent)."""
    return _IN_REQUEST.get()


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _parse(body: bytes, content_type: str) -> Any:
    if not body:
        return {}
    try:
        if "application/json" in content_type:
            return json.loads(body)
        if "form" in content_type:
            return {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    except (ValueError, UnicodeDecodeError):
        pass
    return {}


def _token(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:]
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == TOKEN_COOKIE and value:
            return value
    return None


async def _actor(headers: dict[str, str], action: ApiAction) -> str:
    if action.action == "auth.login" and action.target:
        return action.target.removeprefix("user:")
    token = _token(headers)
    if not token:
        return "anonymous"
    try:
        from airflow.api_fastapi.app import get_auth_manager

        user = await get_auth_manager().get_user_from_token(token)
        return user.get_name()
    except Exception:  # noqa: BLE001 - expired, forged, revoked: the request was refused anyway
        return "anonymous (invalid token)"


def _result(status: int, action: ApiAction, login_cookie: bool) -> str:
    if status in (401, 403):
        return "refused"
    if action.action == "auth.login" and action.details.get("via") == "ui":
        return "success" if login_cookie else "refused"  # FAB redirects either way
    return "success" if status < 400 else "failure"


def _reason(status: int, error_body: bytes) -> str | None:
    if status < 400:
        return None
    try:
        detail = json.loads(error_body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    text = (
        detail
        if isinstance(detail, str)
        else json.dumps(detail, ensure_ascii=False)
        if detail
        else error_body.decode("utf-8", "replace")
    )
    return f"HTTP {status}: {text[:300]}"


def _write(
    action: ApiAction,
    actor: str,
    source: str | None,
    result: str,
    reason: str | None,
    status: int,
    method: str,
) -> None:
    from hisops.airflow.ops_centre import catalog_repository

    catalog_repository().add_audit_event(
        actor,
        action.action,
        action.target,
        result,  # type: ignore[arg-type]
        details={**action.details, "http": f"{method} {status}"},
        dag_id=action.dag_id,
        run_id=action.run_id,
        source=source,
        reason=reason,
    )


class AuditMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): streams pass through, bodies are replayed."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(WATCHED):
            await self.app(scope, receive, send)
            return
        method, headers = scope["method"], _headers(scope)
        body, receive = await self._buffer(method, headers, receive)
        seen: dict[str, Any] = {"status": 500, "cookie": False, "error": b"", "done": False}

        async def record() -> None:
            if not seen["done"]:
                seen["done"] = True
                await self._record(scope, method, path, headers, body, seen)

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen["cookie"] = any(
                    k.lower() == b"set-cookie"
                    and v.startswith(b"_token=")
                    and not v.startswith(b"_token=;")
                    for k, v in message.get("headers", [])
                )
            elif message["type"] == "http.response.body":
                if seen["status"] >= 400:
                    seen["error"] = (seen["error"] + message.get("body", b""))[:2000]
                if not message.get("more_body", False):
                    await record()  # recorded before the client has the answer
            await send(message)

        token = _IN_REQUEST.set(True)
        try:
            await self.app(scope, receive, watch)
        finally:
            _IN_REQUEST.reset(token)
            await record()

    async def _buffer(
        self, method: str, headers: dict[str, str], receive: Receive
    ) -> tuple[Any, Receive]:
        if method not in MUTATING or int(headers.get("content-length") or 0) > MAX_BODY:
            return {}, receive
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False) and message["type"] == "http.request"
        raw = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        return _parse(raw, headers.get("content-type", "")), replay

    async def _record(
        self,
        scope: Scope,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        seen: dict[str, Any],
    ) -> None:
        status = seen["status"]
        action = classify(method, path, status, body)
        if action is None:
            return
        try:
            import anyio

            actor = await _actor(headers, action)
            source = (scope.get("client") or (None,))[0]
            result = _result(status, action, seen["cookie"])
            await anyio.to_thread.run_sync(
                _write,
                action,
                actor,
                source,
                result,
                _reason(status, seen["error"]),
                status,
                method,
            )
        except Exception:  # noqa: BLE001 - the audit write must never break the request
            log.exception("hisops audit: could not record %s %s (%s)", method, path, status)
