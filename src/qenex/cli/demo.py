"""`qenex demo` (what `make run` runs): QENEX on the embedded PostgreSQL with a small demo data set.

It starts (or attaches to) the embedded server in the data directory (``./.qenex`` by default),
applies migrations, loads the demo data and prints balances and what to try next. Every demo
mutation carries a fixed idempotency key, so running the demo again replays the same results
and changes nothing. When a `qenex serve` command is registered (the API server), the demo
then replaces itself with it (``exec``), so `make run` ends with a running server.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

import typer

from qenex.cli._ledger_common import ConfigOption, print_table, run_kernel
from qenex.config import load_settings

# Prefix of every demo idempotency key and owner id: the demo never touches other data.
DEMO_PREFIX = "demo"


@dataclass(frozen=True)
class DemoAccount:
    key: str
    owner_id: str
    account_type: str
    currency: str
    initial_balance: Decimal | None


DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("alice_usd", "demo_alice", "CHECKING", "USD", Decimal("5000.00")),
    DemoAccount("alice_eur", "demo_alice", "SAVINGS", "EUR", Decimal("1000.00")),
    DemoAccount("bob_usd", "demo_bob", "CHECKING", "USD", Decimal("1200.00")),
    DemoAccount("carol_gbp", "demo_carol", "CHECKING", "GBP", Decimal("3000.00")),
    DemoAccount("carol_usd", "demo_carol", "SAVINGS", "USD", None),
)

_app_ref: list[typer.Typer] = []


def register(app: typer.Typer) -> None:
    _app_ref.append(app)
    app.command("demo")(demo_cmd)


def _key(name: str) -> str:
    return f"{DEMO_PREFIX}-{name}"


async def _accounts(kernel: Any) -> dict[str, str]:
    ids: dict[str, str] = {}
    for spec in DEMO_ACCOUNTS:
        acct = await kernel.create_account(
            owner_id=spec.owner_id,
            account_type=spec.account_type,
            currency=spec.currency,
            initial_balance=spec.initial_balance,
            metadata={"demo": True, "name": spec.key},
            idempotency_key=_key(f"account-{spec.key}"),
        )
        ids[spec.key] = str(acct.id)
    return ids


async def _transfer(kernel: Any, key: str, a: str, b: str, amount: str, currency: str, **extra: Any) -> str:
    from qenex import TransactionType

    return str(
        await kernel.process_transaction(
            TransactionType.TRANSFER,
            from_account=a,
            to_account=b,
            amount=Decimal(amount),
            currency=currency,
            metadata={"description": key.replace("-", " ")},
            idempotency_key=_key(key),
            **extra,
        )
    )


async def load_demo_data(kernel: Any) -> dict[str, Any]:
    """Create (or replay) the demo data set; returns the ids it used."""
    from qenex import TransactionType

    ids = await _accounts(kernel)
    await _transfer(kernel, "rent-share", ids["alice_usd"], ids["bob_usd"], "250.00", "USD")
    await _transfer(kernel, "lunch", ids["bob_usd"], ids["alice_usd"], "42.50", "USD")
    await _transfer(kernel, "gift", ids["alice_usd"], ids["carol_usd"], "120.00", "USD")
    pending = await _transfer(
        kernel, "card-hold", ids["bob_usd"], ids["carol_usd"], "75.00", "USD", pending=True, timeout_seconds=86_400
    )
    mistake = await _transfer(kernel, "mistaken-payment", ids["carol_usd"], ids["bob_usd"], "20.00", "USD")
    reversal = await kernel.reverse_transaction(mistake, idempotency_key=_key("reverse-mistaken-payment"))
    exchange = await kernel.process_transaction(
        TransactionType.EXCHANGE,
        from_account=ids["alice_usd"],
        to_account=ids["alice_eur"],
        amount=Decimal("100.00"),
        currency="USD",
        rate=Decimal("0.92"),
        metadata={"description": "USD to EUR"},
        idempotency_key=_key("exchange-usd-eur"),
    )
    return {"accounts": ids, "pending": pending, "reversal": str(reversal), "exchange": str(exchange)}


async def _balances(kernel: Any, ids: dict[str, str]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for spec in DEMO_ACCOUNTS:
        acct = await kernel.get_account(ids[spec.key])
        bal = acct.balances
        rows.append(
            (spec.key, ids[spec.key], spec.currency, str(bal.posted), str(bal.pending), str(bal.available))
        )
    return rows


def _next_steps(data: dict[str, Any]) -> str:
    ids = data["accounts"]
    return "\n".join(
        [
            "What to try next:",
            "  qenex account list",
            f"  qenex account show {ids['alice_usd']}",
            f"  qenex transfer --from {ids['alice_usd']} --to {ids['bob_usd']} --amount 10.00 --currency USD"
            " --idempotency-key try-1",
            f"  qenex statement {ids['alice_usd']} --format csv",
            "  qenex audit verify",
            "  qenex bench --seconds 1",
            "  qenex --help",
        ]
    )


def _serve_registered() -> bool:
    if not _app_ref:
        return False
    app = _app_ref[0]
    return any(c.name == "serve" for c in app.registered_commands)


def demo_cmd(
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the API server afterwards.")] = True,
    config: ConfigOption = None,
) -> None:
    """Start QENEX on the embedded PostgreSQL, load demo data (idempotent), print what to try next."""

    async def body(kernel: Any) -> tuple[dict[str, Any], list[tuple[str, ...]]]:
        data = await load_demo_data(kernel)
        return data, await _balances(kernel, data["accounts"])

    settings = load_settings(config)
    where = (
        "an external PostgreSQL server"
        if settings.database.external_url() is not None
        else f"the embedded PostgreSQL in {os.path.abspath(settings.data_dir)}"
    )
    typer.echo(f"Starting QENEX on {where}: migrations, then the demo data set...")
    data, rows = run_kernel(config, body)
    print_table("Demo balances", ("account", "id", "currency", "posted", "pending", "available"), rows)
    typer.echo(f"pending hold: {data['pending']}   reversal: {data['reversal']}   exchange: {data['exchange']}")
    typer.echo(_next_steps(data))
    if serve and _serve_registered():
        from qenex.cli.serve import demo_curl_hint

        port = settings.api.port
        typer.echo(f"The API server starts now on port {port} (Ctrl+C stops it). In another terminal:")
        typer.echo(f"  curl http://127.0.0.1:{port}/health")
        typer.echo(demo_curl_hint(config, data["accounts"]))
        sys.stdout.flush()
        if config:
            os.environ["QENEX_CONFIG"] = config  # settings read it when no --config is given
        os.execv(sys.executable, [sys.executable, "-m", "qenex", "serve"])  # noqa: S606 - replace the demo with the server, same environment
