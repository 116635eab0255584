"""``Idempotency-Key`` for mutations: the first response is stored per (principal, key) and
replayed on a retry with the same request (status, body and headers such as ``Location``); the
same key with a different request gets 409.

Which responses are stored: the final answer of the mutation once it ran under the key, success
or rejection. A ledger rejection (422 ``insufficient_funds``, 409 ``pending_already_resolved``,
404 ``transaction_not_found``...) is final: a retry gets the same 4xx, not a later success.
Not stored, so a retry runs again:
* 5xx, including 503 ``database_unavailable``: the client should retry;
* 408, 425 and 429: transient by definition;
* 401 and 403: authentication and authorization are decided before the mutation runs (the
  principal may be unknown) and may change (a key granted a scope);
* anything refused before the handler runs (413 body size, 400/422 schema validation): the
  request never executed under the key.

Concurrent duplicates are safe too: the key (namespaced by principal) is also handed to the
ledger, which applies a keyed command once and reports the replay.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Final

from fastapi import Header, Request, Response
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from qenex.api.problems import IDEMPOTENCY_CONFLICT, ApiError, error_response
from qenex.errors import QenexError

IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
IDEMPOTENCY_KEY_CHARS_MAX: Final = 128
IDEMPOTENCY_RETENTION_HOURS: Final = 24
REPLAY_HEADER: Final = "Idempotent-Replayed"
# Statuses never stored (see the module docstring); every 5xx is not stored either.
UNSTORED_STATUSES: Final = frozenset({401, 403, 408, 425, 429})
# Response headers a replay does not copy: the body's own, and the per-request id.
_UNSTORED_HEADERS: Final = frozenset({"content-length", "content-type", "x-request-id", REPLAY_HEADER.lower()})
_KEY_RE: Final = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces

# Declared on every mutation so OpenAPI documents it; `request_key` reads and checks it.
IdempotencyHeader = Annotated[str | None, Header(
    alias=IDEMPOTENCY_HEADER, min_length=1, max_length=IDEMPOTENCY_KEY_CHARS_MAX, pattern=r"^[\x21-\x7e]+$",
    description="Replaying a request with the same key returns the original response; a different request "
                "with the same key gets 409.")]

Pool = AsyncConnectionPool[AsyncConnection[TupleRow]]


def request_key(request: Request) -> str | None:
    """The validated Idempotency-Key header, or None when absent."""
    raw = request.headers.get(IDEMPOTENCY_HEADER)
    if raw is None:
        return None
    if not _KEY_RE.match(raw):
        raise ApiError("invalid_idempotency_key",
                       f"{IDEMPOTENCY_HEADER} must be 1-{IDEMPOTENCY_KEY_CHARS_MAX} printable ASCII characters", 400)
    return raw


def ledger_key(actor: str, key: str | None, suffix: str = "") -> str | None:
    """The key handed to the ledger: namespaced by principal so two clients never collide."""
    return None if key is None else f"{actor}|{key}{suffix}"


def fingerprint(method: str, path: str, canonical_body: str) -> bytes:
    return hashlib.sha256(f"{method} {path}\n{canonical_body}".encode()).digest()


async def replay(pool: Pool, actor: str, key: str, digest: bytes) -> Response | None:
    """The stored response for this key, None if unseen; 409 when the key was used for another request."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT request_sha256, status_code, media_type, body, headers FROM api_idempotency"
            " WHERE principal = %s AND key = %s", (actor, key))
        row = await cur.fetchone()
    if row is None:
        return None
    if bytes(row[0]) != digest:
        raise ApiError(IDEMPOTENCY_CONFLICT, f"this {IDEMPOTENCY_HEADER} was already used with a different request",
                       409)
    headers = {str(k): str(v) for k, v in dict(row[4] or {}).items()} | {REPLAY_HEADER: "true"}
    return Response(bytes(row[3]), status_code=int(row[1]), media_type=str(row[2]), headers=headers)


def storable(status: int) -> bool:
    return status < 500 and status not in UNSTORED_STATUSES


async def remember(pool: Pool, actor: str, key: str, digest: bytes, response: Response) -> None:
    """Store a final response (see the module docstring for what is not stored)."""
    if not storable(response.status_code):
        return
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in response.raw_headers
               if k.decode("latin-1").lower() not in _UNSTORED_HEADERS}
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO api_idempotency (principal, key, request_sha256, status_code, media_type, body, headers)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (actor, key, digest, response.status_code, response.media_type or "application/json",
             bytes(response.body), Jsonb(headers)))


async def purge_expired(pool: Pool) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "DELETE FROM api_idempotency WHERE created_at < now() - make_interval(hours => %s)",
            (IDEMPOTENCY_RETENTION_HOURS,))
        return cur.rowcount


async def idempotent(pool: Pool, request: Request, actor: str, canonical_body: Callable[[], str],
                     handler: Callable[[str | None], Awaitable[Response]]) -> Response:
    """Run ``handler(ledger_key)`` once per Idempotency-Key; replay or refuse on reuse.
    ``canonical_body`` is only computed when a key is present."""
    key = request_key(request)
    if key is None:
        return await handler(None)
    digest = fingerprint(request.method, request.url.path, canonical_body())
    stored = await replay(pool, actor, key, digest)
    if stored is not None:
        return stored
    try:
        response: Response = await handler(ledger_key(actor, key))
    except QenexError as exc:  # a rejection is an answer too: rendered, stored when final, returned
        response = error_response(request, exc)
    await remember(pool, actor, key, digest, response)
    return response
