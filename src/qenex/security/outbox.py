"""The relay from the ledger's transactional outbox into the hash-chained audit log.

A ledger mutation made with an ``AuditNote`` (qenex.sdk.kernel) leaves one ``ledger_outbox`` row,
written in the mutation's own database transaction: the caller's note (who, what, from where)
and the outcome (counts, produced ids, failed items with their codes). ``relay`` moves rows into
the audit log and deletes them in ONE transaction, so every committed mutation gets exactly one
audit record: a crash before the relay commits leaves the row for the next relay, and two relays
never take the same row (``FOR UPDATE SKIP LOCKED``; the chain lock orders their appends).

The API server runs the relay continuously (qenex.api.auditing); the CLI runs it once after its
own mutations; ``outbox_backlog`` tells ``qenex audit verify`` what is still waiting.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import psycopg

from qenex.security import audit as A
from qenex.security.audit import AuditEvent

log = logging.getLogger("qenex.audit.outbox")

# Most outbox rows one relay transaction moves (the audit append batches them).
RELAY_ROWS_MAX: Final = 1_000
# Most relay transactions one drain runs before it yields to other work.
DRAIN_ROUNDS_MAX: Final = 100
OUTBOX_ACTOR: Final = "system:outbox"

_SELECT = "SELECT id, payload FROM ledger_outbox ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
_DELETE = "DELETE FROM ledger_outbox WHERE id = ANY(%s)"


def note_record(actor: str, action: str, resource: str, source_ip: str | None,
                details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON record an API or CLI caller attaches to a ledger mutation (see AuditNote)."""
    return {"actor": actor, "action": action, "resource": resource[:A.RESOURCE_CHARS_MAX],
            "source_ip": source_ip, "details": dict(details or {})}


def event_from_payload(payload: str) -> AuditEvent:
    """The audit event of one outbox payload: the note's who/what/where, and an outcome of
    success, failure or (for a batch with both) partial, with the ids and failure codes."""
    data = json.loads(payload)
    note, outcome = data["note"], data["outcome"]
    details = dict(note.get("details") or {})
    items, failed = int(outcome["items"]), int(outcome["failed"])
    if items == 1:
        result = "failure" if failed else "success"
        if failed:
            details["code"] = outcome["failures"][0][1]
        elif outcome["ids"]:
            details["id"] = outcome["ids"][0][0]
        if outcome.get("replayed"):
            details["replayed"] = True
    else:
        result = "success" if failed == 0 else "failure" if failed == items else "partial"
        details.update({name: outcome[name] for name in ("items", "succeeded", "failed", "replayed", "ids",
                                                          "ids_listed_all", "failures") if name in outcome})
    return AuditEvent(actor=str(note["actor"]), action=str(note["action"]), resource=str(note.get("resource", "")),
                      outcome=result, source_ip=note.get("source_ip"), details=details)


def _fallback(row_id: int, reason: str) -> AuditEvent:
    """Stands in for a payload the audit log refuses, so one bad row never blocks the others and
    never disappears without a trace."""
    return AuditEvent(actor=OUTBOX_ACTOR, action="audit.outbox_unreadable", resource=f"outbox:{row_id}",
                      outcome="failure", details={"reason": reason[:200]})


def _events(rows: list[tuple[int, str]]) -> list[AuditEvent]:
    events = []
    for row_id, payload in rows:
        try:
            events.append(event_from_payload(payload))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            events.append(_fallback(row_id, exc.__class__.__name__))
    return events


def _replace_refused(exc: A.AuditError, rows: list[tuple[int, str]], events: list[AuditEvent]) -> None:
    """Put a fallback in place of the event the audit log refused (it validates every event
    before writing any); any other failure is raised."""
    index = A.refused_index(exc, len(events))
    if index is None:
        raise exc
    events[index] = _fallback(rows[index][0], exc.message)


async def relay(conn: psycopg.AsyncConnection[Any], rows_max: int = RELAY_ROWS_MAX) -> int:
    """Move up to ``rows_max`` outbox rows into the audit log in one transaction on ``conn`` (a
    non-autocommit connection, idle). Returns how many rows were moved."""
    async with conn.transaction():
        rows = await (await conn.execute(_SELECT, (rows_max,))).fetchall()
        if not rows:
            return 0
        events = _events(rows)
        while True:
            try:
                await A.record_events(conn, events)
                break
            except A.AuditError as exc:  # refused before anything was written: replace it, keep the rest
                _replace_refused(exc, rows, events)
        await conn.execute(_DELETE, ([r[0] for r in rows],))
    return len(rows)


async def drain(conn: psycopg.AsyncConnection[Any]) -> int:
    """Relay until the outbox is empty (or DRAIN_ROUNDS_MAX transactions ran)."""
    moved = 0
    for _ in range(DRAIN_ROUNDS_MAX):
        count = await relay(conn)
        moved += count
        if count < RELAY_ROWS_MAX:
            break
    return moved


def _relay_sync(conn: psycopg.Connection[Any]) -> int:
    with conn.transaction():
        rows = conn.execute(_SELECT, (RELAY_ROWS_MAX,)).fetchall()
        if not rows:
            return 0
        events = _events(rows)
        while True:
            try:
                A.record_events_sync(conn, events)
                break
            except A.AuditError as exc:
                _replace_refused(exc, rows, events)
        conn.execute(_DELETE, ([r[0] for r in rows],))
    return len(rows)


def drain_sync(conninfo: str) -> int:
    """``drain`` for a command-line process: its own connection, closed afterwards."""
    with psycopg.connect(conninfo, autocommit=False) as conn:
        moved = 0
        for _ in range(DRAIN_ROUNDS_MAX):
            count = _relay_sync(conn)
            moved += count
            if count < RELAY_ROWS_MAX:
                break
        return moved


@dataclass(frozen=True)
class OutboxBacklog:
    rows: int
    oldest_age_s: float | None


def outbox_backlog(conn: psycopg.Connection[Any]) -> OutboxBacklog:
    """How many notes wait for the relay, and how old the oldest is."""
    row = conn.execute("SELECT count(*), min(created_at) FROM ledger_outbox").fetchone()
    if row is None or row[0] == 0:
        return OutboxBacklog(0, None)
    return OutboxBacklog(int(row[0]), (datetime.now(UTC) - row[1]).total_seconds())
