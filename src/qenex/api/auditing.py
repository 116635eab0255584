"""Audit records for authenticated mutations, written with group commit.

Every mutation awaits its own record, but concurrent records share one database transaction:
`qenex.security.audit.record_events` takes the chain lock and reads the tail once, extends the
hash chain in memory and inserts them all together, then there is one commit. So auditing every
write does not cap the API's throughput at one commit (or two round trips) per request;
`qenex audit verify` checks these records like any other.

The writer also signs the trail on a timer: every ``checkpoint_interval_s`` (the setting
``security.audit_checkpoint_seconds``) it makes an ML-DSA checkpoint when records were added since
the last one, whoever added them (this process, another worker, the security service or the CLI),
so no record stays unsigned for long (`qenex audit verify` fails when one does).

Ledger mutations are not recorded here directly: the API hands the kernel an ``AuditNote``,
which the kernel writes to the ledger outbox in the mutation's own transaction. The writer's
relay task moves outbox notes into the audit log (`qenex.security.outbox`), woken by ``poke()``
after each mutation and every ``OUTBOX_POLL_INTERVAL_S`` for notes other processes left, so a
mutation can never commit without its audit record following.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Final, Literal

import psycopg
from psycopg.rows import TupleRow

from qenex.security import audit as A
from qenex.security import outbox
from qenex.security.audit import AuditEvent

log = logging.getLogger("qenex.api.audit")

AUDIT_BATCH_RECORDS_MAX: Final = 1_000
AUDIT_QUEUE_RECORDS_MAX: Final = 100_000
# How often the relay looks at the outbox when nobody pokes it (notes of other processes, retries).
OUTBOX_POLL_INTERVAL_S: Final = 1.0


@dataclass(slots=True)
class _Job:
    event: AuditEvent
    future: asyncio.Future[None]


class AuditWriter:
    """``await writer.record(event)`` returns once the record is committed."""

    def __init__(self, conninfo: str, *, checkpoint_interval_s: float | None = None) -> None:
        self._conninfo = conninfo
        self._checkpoint_interval_s = checkpoint_interval_s
        self._conn: psycopg.AsyncConnection[TupleRow] | None = None
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue(AUDIT_QUEUE_RECORDS_MAX)
        self._task: asyncio.Task[None] | None = None
        self._relay_conn: psycopg.AsyncConnection[TupleRow] | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self._relay_wake = asyncio.Event()
        self._relay_stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="qenex-api-audit-writer")
        self._relay_task = asyncio.create_task(self._relay_loop(), name="qenex-api-outbox-relay")

    async def stop(self) -> None:
        if self._relay_task is not None:
            self._relay_stopping = True
            self._relay_wake.set()
            await self._relay_task  # its last round drains what this process's requests left
            self._relay_task = None
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
        for conn in (self._conn, self._relay_conn):
            if conn is not None:
                await conn.close()
        self._conn = self._relay_conn = None

    def poke(self) -> None:
        """A ledger mutation left an outbox note: relay it soon."""
        self._relay_wake.set()

    async def _relay_round(self) -> None:
        try:
            if self._relay_conn is None or self._relay_conn.closed or self._relay_conn.broken:
                self._relay_conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=False)
            await outbox.drain(self._relay_conn)
        except Exception as exc:  # noqa: BLE001 - the notes stay in the outbox; the next round retries
            with contextlib.suppress(Exception):
                if self._relay_conn is not None and not self._relay_conn.closed:
                    await self._relay_conn.rollback()
            log.warning("outbox relay round failed: %s", getattr(exc, "code", exc.__class__.__name__))

    async def _relay_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._relay_wake.wait(), OUTBOX_POLL_INTERVAL_S)
            self._relay_wake.clear()
            await self._relay_round()
            if self._relay_stopping:
                return

    async def record(self, event: AuditEvent) -> None:
        if self._task is None:
            raise RuntimeError("the audit writer is not running")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(event, future))
        await future

    async def _connection(self) -> psycopg.AsyncConnection[TupleRow]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=False)
        return self._conn

    async def _next_job(self, deadline: float | None) -> _Job | None | Literal["checkpoint"]:
        """The next queued job, or "checkpoint" when the checkpoint deadline comes first."""
        if deadline is None:
            return await self._queue.get()
        timeout = deadline - asyncio.get_running_loop().time()
        if timeout <= 0:
            return "checkpoint"
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return "checkpoint"

    async def _checkpoint(self) -> None:
        try:
            conn = await self._connection()
            await A.checkpoint_if_new_async(conn)
        except Exception as exc:  # noqa: BLE001 - the records stand; the next timer tries again
            await self._rollback()
            log.warning("periodic audit checkpoint skipped: %s", getattr(exc, "code", exc.__class__.__name__))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self._checkpoint_interval_s
        deadline = None if interval is None else loop.time() + interval
        while True:
            job = await self._next_job(deadline)
            if isinstance(job, str):  # the checkpoint deadline came first
                await self._checkpoint()
                deadline = None if interval is None else loop.time() + interval
                continue
            if job is None:
                return
            jobs = [job]
            stop = False
            while len(jobs) < AUDIT_BATCH_RECORDS_MAX:
                try:
                    nxt = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            await self._write(jobs)
            if stop:
                return

    async def _write(self, jobs: list[_Job]) -> None:
        while jobs:
            try:
                conn = await self._connection()
                async with conn.transaction():
                    await A.record_events(conn, [job.event for job in jobs])
            except Exception as exc:  # noqa: BLE001 - the writer survives; each waiter learns the outcome
                await self._rollback()
                bad = A.refused_index(exc, len(jobs))
                if bad is not None:  # a malformed event fails alone; nothing was written, so retry the rest
                    _settle([jobs[bad]], exc)
                    jobs = jobs[:bad] + jobs[bad + 1 :]
                    continue
                if len(jobs) > 1:  # one bad record must not lose the others: write each alone
                    for job in jobs:
                        await self._write([job])
                    return
                log.error("audit record not written: %s", exc.__class__.__name__)
                _settle(jobs, exc)
                return
            _settle(jobs, None)
            return

    async def _rollback(self) -> None:
        with contextlib.suppress(Exception):
            if self._conn is not None and not self._conn.closed:
                await self._conn.rollback()


def _settle(jobs: list[_Job], exc: BaseException | None) -> None:
    for job in jobs:
        if job.future.done():
            continue
        if exc is None:
            job.future.set_result(None)
        else:
            job.future.set_exception(exc)


def mutation_event(actor: str, action: str, resource: str, outcome: str, source_ip: str | None,
                   details: dict[str, Any] | None = None) -> AuditEvent:
    return AuditEvent(actor=actor, action=action, resource=resource[:200], outcome=outcome,
                      source_ip=source_ip, details=details or {})
