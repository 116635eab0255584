"""``WS /stream``: ledger events (``transaction.created``, ``transaction.completed``, ...) pushed to
any number of authenticated subscribers as they happen.

The source is the ledger journal (``FinancialKernel.events``: LISTEN/NOTIFY plus a read of the
rows after the last sequence number), so nothing committed is missed. Without Redis each server
process follows the journal itself. With Redis configured, one process at a time (the holder of
a Redis lease) follows the journal and publishes each event on a Redis channel; every process
relays that channel to its own subscribers. The last published sequence number is kept in Redis,
so a new leader continues where the previous one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from qenex.security import rbac
from qenex.security.errors import SecurityError

log = logging.getLogger("qenex.api.stream")

SUBSCRIBER_QUEUE_EVENTS_MAX: Final = 10_000
OWNER_CACHE_ENTRIES_MAX: Final = 100_000
REDIS_PREFIX: Final = "qenex:stream"
LEASE_MS: Final = 5_000
RENEW_INTERVAL_S: Final = 1.5
SOURCE_RETRY_S: Final = 1.0
READY_TIMEOUT_S: Final = 5.0
WS_POLICY_VIOLATION: Final = 1008
WS_TRY_AGAIN_LATER: Final = 1013
# An open stream re-checks its credential this often (revocation, expiry, a locked operator), and
# also at the credential's own expiry; it is closed with 1008 once the credential is no longer valid.
STREAM_RECHECK_INTERVAL_S: Final = 5.0

_RENEW_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class EventHub:
    """In-process fan-out to WebSocket subscribers. A subscriber too slow to keep up with
    SUBSCRIBER_QUEUE_EVENTS_MAX events is disconnected rather than slowing everyone down."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[str | None]] = set()
        self.published = 0
        self.wanted = asyncio.Event()  # someone subscribes
        self.following = asyncio.Event()  # the local journal follower is running

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> asyncio.Queue[str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(SUBSCRIBER_QUEUE_EVENTS_MAX)
        self._subscribers.add(queue)
        self.wanted.set()
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self._subscribers.discard(queue)
        if not self._subscribers:
            self.wanted.clear()

    def publish(self, text: str) -> None:
        self.published += 1
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:
                self.unsubscribe(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)  # tells the connection to close


class EventSource:
    """Feeds an EventHub from the journal, directly or through Redis (see the module docstring)."""

    def __init__(self, kernel: Any, hub: EventHub, redis_url: str | None, namespace: str = "default",
                 head: Callable[[], Awaitable[int]] | None = None) -> None:
        self.kernel = kernel
        self.head = head or _zero
        self.hub = hub
        self.redis_url = redis_url
        # Servers of one database share a namespace; another database's servers never mix in.
        self.channel = f"{REDIS_PREFIX}:{namespace}:events"
        self._leader_key = f"{REDIS_PREFIX}:{namespace}:leader"
        self._seq_key = f"{REDIS_PREFIX}:{namespace}:seq"
        self._tasks: list[asyncio.Task[None]] = []
        self._redis: Any = None
        self.is_leader = False

    async def start(self, start_seq: int) -> None:
        if self.redis_url is None:
            self._tasks.append(asyncio.create_task(self._follow_local(start_seq), name="qenex-stream-journal"))
            return
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(self.redis_url, decode_responses=True)
        await self._redis.setnx(self._seq_key, start_seq)
        self._tasks.append(asyncio.create_task(self._relay(), name="qenex-stream-relay"))
        self._tasks.append(asyncio.create_task(self._lead(), name="qenex-stream-leader"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _follow_local(self, start_seq: int) -> None:
        """Follow the journal while anyone subscribes (nothing is read or serialized otherwise).
        Starting from idle, it begins at the journal head; after an error it resumes at ``seq``."""
        seq: int | None = None  # from the head when the first subscriber comes (start_seq is for Redis)
        while True:
            await self.hub.wanted.wait()
            try:
                if seq is None:
                    seq = await self.head()
                self.hub.following.set()
                async with contextlib.aclosing(self.kernel.events(after_seq=seq)) as events:
                    async for event in events:
                        if self.hub.subscribers:
                            self.hub.publish(json.dumps(event.to_dict()))
                        seq = event.seq
                        if not self.hub.subscribers:
                            break
                seq = None  # idle from here: the next subscriber starts at the head
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database went away: retry, resume at seq
                log.warning("event stream source interrupted (%s); retrying", exc.__class__.__name__)
                await asyncio.sleep(SOURCE_RETRY_S)
            finally:
                self.hub.following.clear()

    async def ready(self) -> None:
        """Returns once events committed from now on will reach a new subscriber."""
        if self.redis_url is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.hub.following.wait(), READY_TIMEOUT_S)

    async def _relay(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.hub.publish(str(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis restarted: subscribe again
                log.warning("stream relay from Redis interrupted (%s); retrying", exc.__class__.__name__)
                await asyncio.sleep(SOURCE_RETRY_S)

    async def _lead(self) -> None:
        token = secrets.token_hex(8)
        while True:
            try:
                if await self._redis.set(self._leader_key, token, nx=True, px=LEASE_MS):
                    await self._while_leader(token)
                else:
                    await asyncio.sleep(RENEW_INTERVAL_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis or database trouble: step down, try again
                log.warning("stream leadership lost (%s)", exc.__class__.__name__)
                self.is_leader = False
                await asyncio.sleep(SOURCE_RETRY_S)

    async def _while_leader(self, token: str) -> None:
        self.is_leader = True
        start = int(await self._redis.get(self._seq_key) or 0)
        pump = asyncio.create_task(self._publish_from(start), name="qenex-stream-publisher")
        try:
            while not pump.done():
                await asyncio.sleep(RENEW_INTERVAL_S)
                if not await self._redis.eval(_RENEW_LUA, 1, self._leader_key, token, LEASE_MS):
                    break
        finally:
            self.is_leader = False
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump

    async def _publish_from(self, seq: int) -> None:
        async for event in self.kernel.events(after_seq=seq):
            await self._redis.publish(self.channel, json.dumps(event.to_dict()))
            if event.seq != seq:
                seq = event.seq
                await self._redis.set(self._seq_key, seq)


async def _zero() -> int:
    return 0


class OwnerCache:
    """Account id -> owner id (owners never change), for filtering a customer's stream."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self._owners: OrderedDict[int, str | None] = OrderedDict()

    async def owner(self, account_id: int) -> str | None:
        if account_id in self._owners:
            return self._owners[account_id]
        account = await self.kernel.get_account(account_id)
        owner = account.owner_id if account is not None else None
        self._owners[account_id] = owner
        if len(self._owners) > OWNER_CACHE_ENTRIES_MAX:
            self._owners.popitem(last=False)
        return owner

    async def visible(self, principal: rbac.Principal, text: str) -> bool:
        if rbac.owner_filter(principal) is None:
            return True
        event = json.loads(text)
        for name in ("from_account", "to_account"):
            if rbac.can_see_owner(principal, await self.owner(int(event[name]))):
                return True
        return False


def _credential(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization")
    if header:
        return header
    token = websocket.query_params.get("access_token")
    return f"Bearer {token}" if token else None


def stream_router() -> APIRouter:
    router = APIRouter()

    @router.websocket("/stream")
    async def stream(websocket: WebSocket) -> None:
        """Authenticate (``Authorization: Bearer`` header, or ``?access_token=`` for browsers),
        then receive one JSON text message per ledger event."""
        ctx = websocket.app.state.qenex
        ip = websocket.client.host if websocket.client else None
        try:
            principal = await run_in_threadpool(ctx.security.authenticate, _credential(websocket), source_ip=ip)
            await run_in_threadpool(ctx.security.authorize, principal, rbac.TRANSACTIONS_READ, source_ip=ip,
                                    resource="WS /stream")
        except SecurityError as exc:
            await websocket.close(code=WS_POLICY_VIOLATION, reason=exc.code)
            return
        queue = ctx.hub.subscribe()
        tasks: list[asyncio.Task[Any]] = []
        try:
            await ctx.source.ready()
            await websocket.accept()
            reader = asyncio.create_task(_drain(websocket))
            watch = asyncio.create_task(_watch_credential(ctx.security, _credential(websocket), principal))
            tasks = [reader, watch]
            await _pump(websocket, queue, principal, ctx.owners, reader, watch)
        except WebSocketDisconnect:
            pass
        finally:
            ctx.hub.unsubscribe(queue)
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    return router


async def _watch_credential(security: Any, credential: str | None, principal: rbac.Principal) -> str:
    """Returns (with the refusal's code) once the connection's credential is no longer valid:
    checked every STREAM_RECHECK_INTERVAL_S and at the credential's own expiry."""
    expires_at = principal.expires_at
    while True:
        delay = STREAM_RECHECK_INTERVAL_S
        if expires_at is not None:
            delay = min(delay, max(0.0, (expires_at - datetime.now(UTC)).total_seconds()))
        await asyncio.sleep(delay)
        try:
            current = await run_in_threadpool(security.recheck, credential)
        except SecurityError as exc:
            return exc.code
        except Exception as exc:  # noqa: BLE001 - the database is away: keep the stream, check again later
            log.warning("stream credential re-check failed (%s); retrying", exc.__class__.__name__)
            continue
        if current.expires_at is not None and current.expires_at <= datetime.now(UTC):
            return "invalid_token"
        expires_at = current.expires_at


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) client messages so a close from the client is noticed."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()


async def _pump(websocket: WebSocket, queue: asyncio.Queue[str | None], principal: rbac.Principal,
                owners: OwnerCache, reader: asyncio.Task[None], watch: asyncio.Task[str]) -> None:
    while not reader.done():
        getter = asyncio.ensure_future(queue.get())
        done, _ = await asyncio.wait({getter, reader, watch}, return_when=asyncio.FIRST_COMPLETED)
        if watch in done:
            getter.cancel()
            await websocket.close(code=WS_POLICY_VIOLATION, reason=watch.result())
            return
        if getter not in done:
            getter.cancel()
            return
        text = getter.result()
        if text is None:
            await websocket.close(code=WS_TRY_AGAIN_LATER, reason="too slow")
            return
        if await owners.visible(principal, text):
            await websocket.send_text(text)
