"""Ledger commands: `qenex db migrate`, `qenex account create|list|show`, `qenex transfer`,
`qenex statement`, `qenex audit verify`, `qenex bench`.

Each command is a thin edge: it validates its options (amounts through `qenex.kernel.money`, so
a bad amount is rejected before anything touches the database), calls the in-process SDK or the
store, and renders the answer as a Rich table or, with ``--json``, one JSON document.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Annotated, Any

import typer

from qenex.cli._ledger_common import (
    CliError,
    ConfigOption,
    JsonOption,
    cli_note,
    database_url_for,
    parse_json_object,
    plain,
    print_fields,
    print_json,
    print_table,
    run_db,
    run_kernel,
    store_module,
)
from qenex.errors import QenexError

# A page of `account list` is bounded: the kernel's cursor pagination carries the rest.
LIST_LIMIT_MAX = 1000
LIST_LIMIT_DEFAULT = 50
# Longest owner id / idempotency key / description we accept from the command line, in characters.
TEXT_OPTION_CHARS_MAX = 200

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
account_app = typer.Typer(help="Customer and general-ledger accounts.", no_args_is_help=True)
audit_app = typer.Typer(help="Tamper-evidence checks.", no_args_is_help=True)
tx_app = typer.Typer(help="Look up, post, void or reverse a transaction.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(account_app, name="account")
    app.add_typer(audit_app, name="audit")
    app.add_typer(tx_app, name="transaction")
    app.command("transfer")(transfer_cmd)
    app.command("statement")(statement_cmd)
    app.command("bench")(bench_cmd)


def _text(value: str | None, option: str) -> str | None:
    if value is not None and (not value.strip() or len(value) > TEXT_OPTION_CHARS_MAX):
        raise CliError(f"{option} must be 1 to {TEXT_OPTION_CHARS_MAX} characters")
    return value


def _amount(text: str, currency: str) -> Decimal:
    """The exact Decimal of a command-line amount; rejects floats' traps, extra decimals, <= 0."""
    from qenex.kernel.money import currency_of, from_minor, to_minor

    cur = currency_of(currency.upper())
    return from_minor(to_minor(text, cur), cur)


# ---------------------------------------------------------------- db


@db_app.command("migrate")
def migrate_cmd(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Apply pending schema migrations (re-running is a no-op)."""
    migrations = store_module("migrate")
    url = database_url_for(config)
    applied = run_db(lambda: migrations.migrate(url))
    version = run_db(lambda: migrations.current_version(url))
    if as_json:
        print_json({"applied": list(applied), "current_version": version})
        return
    if applied:
        print_table("Applied migrations", ("migration",), ([name] for name in applied))
    typer.echo(f"schema is at version {version}" + ("" if applied else " (nothing to apply)"))


# ---------------------------------------------------------------- accounts


def account_view(account: Any) -> dict[str, Any]:
    """The fields people and scripts need, from the SDK's account object."""
    data = plain(account)
    if not isinstance(data, dict):
        raise CliError("unexpected account representation")
    return data


def _flat(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key == "balances":
            for sub, v in value.items():
                out[f"{key}.{sub}"] = v
        else:
            out[key] = value
    return out


@account_app.command("create")
def account_create_cmd(
    owner: Annotated[str, typer.Option("--owner", help="Owner id, e.g. user_001.")],
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 code.")],
    account_type: Annotated[str, typer.Option("--type", help="CHECKING, SAVINGS, LOAN or a GL type.")] = "CHECKING",
    initial_balance: Annotated[str | None, typer.Option("--initial-balance", help="Opening deposit.")] = None,
    overdraft_limit: Annotated[str | None, typer.Option("--overdraft-limit", help="Allowed overdraft.")] = None,
    metadata: Annotated[str | None, typer.Option("--metadata", help="JSON object.")] = None,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open an account, optionally with an opening deposit."""
    cur = currency.upper()
    kwargs: dict[str, Any] = {
        "owner_id": _text(owner, "--owner"),
        "account_type": account_type.upper(),
        "currency": cur,
    }
    if initial_balance is not None:
        kwargs["initial_balance"] = _amount(initial_balance, cur)
    if overdraft_limit is not None:
        kwargs["overdraft_limit"] = _amount(overdraft_limit, cur)
    meta = parse_json_object(metadata, "--metadata")
    if meta is not None:
        kwargs["metadata"] = meta
    if idempotency_key is not None:
        kwargs["idempotency_key"] = _text(idempotency_key, "--idempotency-key")

    async def body(kernel: Any) -> Any:
        acct = await kernel.create_account(**kwargs, audit=cli_note("account.create", f"owner:{kwargs['owner_id']}",
                                                                    {"currency": cur}))
        return await kernel.get_account(acct.id)

    _show_account(run_kernel(config, body), as_json)


def _show_account(account: Any, as_json: bool) -> None:
    view = account_view(account)
    if as_json:
        print_json(view)
    else:
        print_fields(f"Account {view.get('id')}", _flat(view))


async def _existing(lookup: Awaitable[Any], code: str, what: str) -> Any:
    """The awaited lookup's result, or a LedgerError ``code`` when ``what`` does not exist."""
    found = await lookup
    if found is None:
        from qenex import LedgerError

        raise LedgerError(code, f"{what} does not exist")
    return found


@account_app.command("show")
def account_show_cmd(account_id: str, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show one account with its posted, pending and available balances."""
    _text(account_id, "ACCOUNT_ID")

    def body(kernel: Any) -> Awaitable[Any]:
        return _existing(kernel.get_account(account_id), "account_not_found", f"account {account_id}")

    _show_account(run_kernel(config, body), as_json)


@account_app.command("list")
def account_list_cmd(
    owner: Annotated[str | None, typer.Option("--owner")] = None,
    status: Annotated[str | None, typer.Option("--status", help="active, frozen or closed.")] = None,
    after: Annotated[str | None, typer.Option("--after", help="Cursor from the previous page.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=LIST_LIMIT_MAX)] = LIST_LIMIT_DEFAULT,
    include_system: Annotated[
        bool, typer.Option("--include-system", help="Also list the general-ledger system accounts (cash, fees...).")
    ] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List accounts, one page at a time (cursor pagination)."""
    _text(owner, "--owner")
    _text(after, "--after")

    async def body(kernel: Any) -> Any:
        return await kernel.list_accounts(
            owner_id=owner, status=status.lower() if status else None, after=after, limit=limit,
            include_system=include_system,
        )

    items, cursor = _page(run_kernel(config, body), limit)
    views = [account_view(a) for a in items]
    if as_json:
        print_json({"accounts": views, "next_cursor": cursor})
        return
    print_table(
        "Accounts",
        ("id", "owner", "type", "currency", "status", "posted", "available"),
        (
            (
                v.get("id"),
                v.get("owner_id") if not v.get("system_code") else f"{v.get('owner_id')}:{v.get('system_code')}",
                v.get("account_type"),
                v.get("currency"),
                v.get("status"),
                (v.get("balances") or {}).get("posted"),
                (v.get("balances") or {}).get("available"),
            )
            for v in views
        ),
    )
    if cursor:
        typer.echo(f"more: --after {cursor}")


def _account_admin(config: str | None, as_json: bool, account_id: str, action: Any) -> None:
    _text(account_id, "ACCOUNT_ID")
    _show_account(run_kernel(config, action), as_json)


AdminKeyOption = Annotated[str | None, typer.Option("--idempotency-key", help="Makes retries safe.")]


@account_app.command("freeze")
def account_freeze_cmd(account_id: str, idempotency_key: AdminKeyOption = None, config: ConfigOption = None,
                       as_json: JsonOption = False) -> None:
    """Freeze an account: every posting to or from it is rejected (account_frozen)."""
    key = _text(idempotency_key, "--idempotency-key")
    _account_admin(config, as_json, account_id, lambda k: k.freeze_account(
        account_id, idempotency_key=key, audit=cli_note("account.freeze", f"account:{account_id}")))


@account_app.command("unfreeze")
def account_unfreeze_cmd(account_id: str, idempotency_key: AdminKeyOption = None, config: ConfigOption = None,
                         as_json: JsonOption = False) -> None:
    """Make a frozen account active again."""
    key = _text(idempotency_key, "--idempotency-key")
    _account_admin(config, as_json, account_id, lambda k: k.unfreeze_account(
        account_id, idempotency_key=key, audit=cli_note("account.unfreeze", f"account:{account_id}")))


@account_app.command("close")
def account_close_cmd(account_id: str, idempotency_key: AdminKeyOption = None, config: ConfigOption = None,
                      as_json: JsonOption = False) -> None:
    """Close an account with a zero balance and no open reservation."""
    key = _text(idempotency_key, "--idempotency-key")
    _account_admin(config, as_json, account_id, lambda k: k.close_account(
        account_id, idempotency_key=key, audit=cli_note("account.close", f"account:{account_id}")))


@account_app.command("set-limit")
def account_set_limit_cmd(
    account_id: str,
    overdraft: Annotated[str, typer.Option("--overdraft", help="How far below zero it may go, e.g. 500.00.")],
    idempotency_key: AdminKeyOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set the overdraft limit of a CHECKING or SAVINGS account."""
    from qenex.kernel.money import parse_decimal

    value = parse_decimal(overdraft)  # precision is checked against the account's currency by the kernel
    key = _text(idempotency_key, "--idempotency-key")
    _account_admin(config, as_json, account_id,
                   lambda k: k.set_overdraft_limit(account_id, value, idempotency_key=key,
                                                   audit=cli_note("account.set_limit", f"account:{account_id}")))


def _page(page: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """(items, next cursor): the SDK pages by id, so a full page's last id is the next cursor."""
    items = list(page)
    return items, (str(items[-1].id) if len(items) == limit else None)


# ---------------------------------------------------------------- transfers


def transfer_cmd(
    from_account: Annotated[str, typer.Option("--from", help="Debited account id.")],
    to_account: Annotated[str, typer.Option("--to", help="Credited account id.")],
    amount: Annotated[str, typer.Option("--amount", help="Decimal amount, e.g. 12.50.")],
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 code.")],
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key", help="Makes retries safe.")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    pending: Annotated[bool, typer.Option("--pending", help="Reserve only (two-phase).")] = False,
    timeout_seconds: Annotated[
        int | None, typer.Option("--timeout-seconds", min=1, help="Expiry of a --pending reservation.")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move money between two accounts of the same currency."""
    cur = currency.upper()
    value = _amount(amount, cur)
    _text(from_account, "--from")
    _text(to_account, "--to")
    kwargs: dict[str, Any] = {
        "from_account": from_account,
        "to_account": to_account,
        "amount": value,
        "currency": cur,
        "metadata": {"description": _text(description, "--description")} if description else {},
        "idempotency_key": _text(idempotency_key, "--idempotency-key"),
    }
    if pending:
        kwargs["pending"] = True
        kwargs["timeout_seconds"] = timeout_seconds
    elif timeout_seconds is not None:
        raise CliError("--timeout-seconds needs --pending")

    async def body(kernel: Any) -> Any:
        from qenex import TransactionType

        note = cli_note("transaction.create", f"account:{from_account}", {"type": "TRANSFER", "amount": str(value),
                                                                            "currency": cur})
        tx_id = await kernel.process_transaction(TransactionType.TRANSFER, **kwargs, audit=note)
        return await kernel.get_transaction(tx_id)

    _show_transaction(run_kernel(config, body), as_json)


def _show_transaction(transaction: Any, as_json: bool) -> None:
    tx = plain(transaction)
    if as_json:
        print_json(tx)
    else:
        print_fields(f"Transaction {tx.get('id', '')}", _transaction_fields(tx))


def _tx_then_show(config: str | None, as_json: bool, action: Any) -> None:
    """Run ``action(kernel) -> transaction id`` and show the resulting transaction."""

    async def body(kernel: Any) -> Any:
        return await kernel.get_transaction(await action(kernel))

    _show_transaction(run_kernel(config, body), as_json)


KeyOption = Annotated[str | None, typer.Option("--idempotency-key", help="Makes retries safe.")]


@tx_app.command("show")
def tx_show_cmd(transaction_id: str, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show one transaction with its legs and status."""
    _text(transaction_id, "TRANSACTION_ID")

    def body(kernel: Any) -> Awaitable[Any]:
        return _existing(kernel.get_transaction(transaction_id), "transaction_not_found",
                         f"transaction {transaction_id}")

    _show_transaction(run_kernel(config, body), as_json)


@tx_app.command("post")
def tx_post_cmd(
    pending_id: str,
    amount: Annotated[str | None, typer.Option("--amount", help="Post part of the reservation.")] = None,
    idempotency_key: KeyOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Post a pending reservation, in full or in part."""
    _text(pending_id, "PENDING_ID")
    key = _text(idempotency_key, "--idempotency-key")

    async def action(kernel: Any) -> Any:
        value = None
        if amount is not None:
            pending = await kernel.get_transaction(pending_id)
            value = _amount(amount, pending.currency) if pending is not None else amount
        return await kernel.post_pending(pending_id, amount=value, idempotency_key=key,
                                         audit=cli_note("transaction.post", f"transaction:{pending_id}"))

    _tx_then_show(config, as_json, action)


@tx_app.command("void")
def tx_void_cmd(
    pending_id: str, idempotency_key: KeyOption = None, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Release a pending reservation."""
    _text(pending_id, "PENDING_ID")
    key = _text(idempotency_key, "--idempotency-key")
    _tx_then_show(config, as_json, lambda kernel: kernel.void_pending(
        pending_id, idempotency_key=key, audit=cli_note("transaction.void", f"transaction:{pending_id}")))


@tx_app.command("reverse")
def tx_reverse_cmd(
    transaction_id: str, idempotency_key: KeyOption = None, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Reverse a posted transaction with a compensating entry."""
    _text(transaction_id, "TRANSACTION_ID")
    key = _text(idempotency_key, "--idempotency-key")
    _tx_then_show(config, as_json, lambda kernel: kernel.reverse_transaction(
        transaction_id, idempotency_key=key, audit=cli_note("transaction.reverse", f"transaction:{transaction_id}")))


def _transaction_fields(tx: dict[str, Any]) -> dict[str, Any]:
    """Non-empty fields, each leg on one readable line."""
    out = {k: v for k, v in tx.items() if v not in (None, {}, []) and k != "legs"}
    for i, leg in enumerate(tx.get("legs") or []):
        out[f"leg {i + 1}"] = f"{leg['debit_account']} -> {leg['credit_account']}: {leg['amount']} {leg['currency']}"
    return out


# ---------------------------------------------------------------- statements


def _when(text: str | None, option: str, *, end: bool) -> datetime | None:
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time.max if end else time.min, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option} must be an ISO date (2026-01-31) or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def statement_cmd(
    account_id: str,
    start: Annotated[str | None, typer.Option("--from", help="First day (ISO date), default: the beginning.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day (ISO date), default: now.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
    config: ConfigOption = None,
) -> None:
    """An account statement for a period: opening balance, entries, closing balance."""
    _text(account_id, "ACCOUNT_ID")
    if fmt not in ("table", "json", "csv"):
        raise CliError("--format must be table, json or csv")
    since = _when(start, "--from", end=False) or datetime(1970, 1, 1, tzinfo=UTC)
    until = _when(end, "--to", end=True) or datetime.now(UTC)
    if since > until:
        raise CliError("--from must not be after --to")

    async def body(kernel: Any) -> Any:
        return await kernel.statement(account_id, since, until)

    stmt = run_kernel(config, body)
    if fmt == "json":
        typer.echo(stmt.to_json())
    elif fmt == "csv":
        typer.echo(stmt.to_csv(), nl=False)
    else:
        _print_statement(stmt)


STATEMENT_COLUMNS = ("seq", "transaction_id", "created_at", "type", "description", "debit", "credit", "balance")


def _print_statement(stmt: Any) -> None:
    data = plain(stmt)
    entries = data.pop("entries", [])
    print_fields("Statement", {k: v for k, v in data.items() if not isinstance(v, list | dict)})
    rows = []
    for e in entries:
        e = {**e, "created_at": str(e.get("created_at", ""))[:19].replace("T", " ")}
        rows.append([e.get(c) for c in STATEMENT_COLUMNS])
    print_table("Entries", ("seq", "tx", "time (UTC)", "type", "description", "debit", "credit", "balance"), rows)


# ---------------------------------------------------------------- audit


@audit_app.command("verify")
def audit_verify_cmd(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Check the ledger's hash chain, the books' invariants and, when installed, the security audit log.

    Exit 0 when every check is intact, 1 when anything was modified, deleted, inserted or reordered,
    or when a balance, reservation, reversal or the chain head disagrees with the journal.
    """
    url = database_url_for(config)
    checks = [_journal_check(url), _invariants_check(url), _security_audit_check(url), _outbox_check(url)]
    intact = all(c["ok"] is not False for c in checks)
    if as_json:
        print_json({"ok": intact, "checks": checks})
    else:
        print_table(
            "Audit verification",
            ("check", "result", "details"),
            (
                (c["name"], "skipped" if c["ok"] is None else ("intact" if c["ok"] else "TAMPERED"), c["details"])
                for c in checks
            ),
        )
        for c in checks:
            for problem in c["problems"]:
                typer.echo(f"{c['name']}: {problem}")
    if not intact:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint_cmd(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Sign the security audit log's head now (ML-DSA). A running API server does this by itself
    every security.audit_checkpoint_seconds; `qenex audit verify` fails on records left unsigned."""
    from qenex.config import load_settings
    from qenex.security.audit import checkpoint_database
    from qenex.security.keyproviders import provider_from_settings

    url = database_url_for(config)
    provider = provider_from_settings(load_settings(config))
    result = run_db(lambda: checkpoint_database(url, provider=provider))
    if as_json:
        print_json(result)
    elif result["checkpoint"] is None:
        typer.echo("the security audit log is empty: nothing to sign")
    else:
        typer.echo(f"checkpoint {result['checkpoint']} signs records 1-{result['last_record_id']}")


def _report_check(name: str, report: Any) -> dict[str, Any]:
    problems = [str(p) for p in (getattr(report, "problems", None) or [])]
    ok = bool(getattr(report, "ok", not problems))
    checked = getattr(report, "checked", None)
    if checked is None:
        checked = getattr(report, "entries_checked", None)
    details = f"{checked} records checked" if checked is not None else ""
    notes = [str(n) for n in (getattr(report, "notes", None) or [])]
    details = "; ".join([d for d in (details, *notes) if d])
    return {"name": name, "ok": ok, "details": details, "problems": problems}


def _journal_check(url: str) -> dict[str, Any]:
    verify_journal = store_module("ledger_audit").verify_journal
    return _report_check("ledger hash chain", run_db(lambda: verify_journal(url)))


def _invariants_check(url: str) -> dict[str, Any]:
    ledger_invariants = store_module("ledger_audit").ledger_invariants
    problems = [str(p) for p in run_db(lambda: ledger_invariants(url))]
    details = "balances, reservations, reversals and chain head agree with the journal" if not problems else (
        f"{len(problems)} problem(s)")
    return {"name": "ledger invariants", "ok": not problems, "details": details, "problems": problems}


def _outbox_check(url: str) -> dict[str, Any]:
    """Audit notes of committed mutations still waiting for the relay: fine while fresh, a
    failure once the oldest is older than the audit log's unsigned window (no relay running)."""
    import psycopg

    from qenex.security.audit import unsigned_window_s
    from qenex.security.outbox import outbox_backlog

    def backlog() -> Any:
        with psycopg.connect(url) as conn:
            return outbox_backlog(conn)

    name = "audit outbox"
    found = run_db(backlog)
    if found.rows == 0:
        return {"name": name, "ok": True, "details": "every mutation's note is in the audit log", "problems": []}
    window = unsigned_window_s()
    details = f"{found.rows} note(s) wait for the relay, oldest {found.oldest_age_s:.0f} s"
    stale = found.oldest_age_s is not None and found.oldest_age_s > window
    problems = [f"notes older than {window:.0f} s are not in the audit log (is a relay running?)"] if stale else []
    return {"name": name, "ok": not stale, "details": details, "problems": problems}


def _security_audit_check(url: str) -> dict[str, Any]:
    name = "security audit log"
    try:
        from qenex.security.audit import verify_audit_log
    except ImportError:
        return {"name": name, "ok": None, "details": "qenex.security.audit is not installed", "problems": []}
    try:
        report = run_db(lambda: verify_audit_log(url))
    except QenexError as exc:  # e.g. no key to check the checkpoints' signatures: not verified, so not intact
        return {"name": name, "ok": False, "details": "could not be verified", "problems": [str(exc)]}
    return _report_check(name, report)


# ---------------------------------------------------------------- bench


def bench_cmd(
    seconds: Annotated[float, typer.Option("--seconds", min=0.2, max=60.0, help="Time per scenario.")] = 3.0,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Run the durable ledger benchmark on a fresh database (see bench/ledger_bench.py)."""
    from qenex.cli.bench_runner import run_ledger_bench

    run_ledger_bench(config=config, seconds=seconds, json_only=as_json)
