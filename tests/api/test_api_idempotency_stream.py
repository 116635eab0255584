"""Idempotency-Key replay and conflict; the WebSocket stream (one process, and two processes
fanned out through Redis)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from .conftest import ApiServer, auth, start_server
from .test_api_basics import open_account

WS_TIMEOUT_S = 15


def transfer(a: int, b: int, amount: str = "1.00") -> dict[str, Any]:
    return {"type": "TRANSFER", "from_account": a, "to_account": b, "amount": amount, "currency": "USD"}


def test_idempotency_key_replays_and_conflicts(client: httpx.Client) -> None:
    a = open_account(client, "idem-a", "100.00")
    b = open_account(client, "idem-b", None)
    key = {"Idempotency-Key": f"pay-{uuid.uuid4().hex}"}
    first = client.post("/api/v1/transactions", json=transfer(a, b, "7.00"), headers=key)
    again = client.post("/api/v1/transactions", json=transfer(a, b, "7.00"), headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert client.get(f"/api/v1/accounts/{a}/balance").json()["posted"] == "93.00"
    conflict = client.post("/api/v1/transactions", json=transfer(a, b, "8.00"), headers=key)
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"
    account_key = {"Idempotency-Key": f"acct-{uuid.uuid4().hex}"}
    body = {"owner_id": "idem-c", "initial_balance": "5.00"}
    one = client.post("/api/v1/accounts", json=body, headers=account_key).json()
    two = client.post("/api/v1/accounts", json=body, headers=account_key).json()
    assert one["id"] == two["id"]
    batch_key = {"Idempotency-Key": f"batch-{uuid.uuid4().hex}"}
    items = {"items": [transfer(a, b), transfer(a, b)]}
    r1 = client.post("/api/v1/transactions/batch", json=items, headers=batch_key).json()
    r2 = client.post("/api/v1/transactions/batch", json=items, headers=batch_key).json()
    assert r1 == r2 and client.get(f"/api/v1/accounts/{a}/balance").json()["posted"] == "91.00"
    bad = client.post("/api/v1/transactions", json=transfer(a, b), headers={"Idempotency-Key": "has space"})
    assert bad.status_code in (400, 422)


def test_concurrent_duplicates_apply_once(client: httpx.Client, server: ApiServer, admin_key: str) -> None:
    a = open_account(client, "race-a", "100.00")
    b = open_account(client, "race-b", None)
    headers = auth(admin_key) | {"Idempotency-Key": f"race-{uuid.uuid4().hex}"}
    results: list[httpx.Response] = []

    def send() -> None:
        results.append(httpx.post(server.url + "/api/v1/transactions", json=transfer(a, b, "10.00"),
                                  headers=headers, timeout=30))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["id"] for r in results}) == 1
    assert client.get(f"/api/v1/accounts/{a}/balance").json()["posted"] == "90.00"


def ws_url(server: ApiServer) -> str:
    return server.url.replace("http://", "ws://") + "/stream"


def receive_events(ws: ClientConnection, wanted: int, tx_ids: set[int]) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < wanted:
        event = json.loads(ws.recv(timeout=WS_TIMEOUT_S))
        if event["transaction_id"] in tx_ids:
            got.append(event)
    return got


def test_stream_requires_authentication(server: ApiServer) -> None:
    with pytest.raises(InvalidStatus):
        connect(ws_url(server), open_timeout=WS_TIMEOUT_S)
    with pytest.raises(InvalidStatus):
        connect(ws_url(server), additional_headers=auth("qnx_0123456789abcdef_" + "A" * 43),
                open_timeout=WS_TIMEOUT_S)


def test_stream_pushes_created_and_completed_to_every_subscriber(server: ApiServer, client: httpx.Client,
                                                                 admin_key: str) -> None:
    a = open_account(client, "ws-a", "100.00")
    b = open_account(client, "ws-b", None)
    with connect(ws_url(server), additional_headers=auth(admin_key), open_timeout=WS_TIMEOUT_S) as one, \
            connect(ws_url(server) + f"?access_token={admin_key}", open_timeout=WS_TIMEOUT_S) as two:
        tx = client.post("/api/v1/transactions", json=transfer(a, b, "3.00")).json()["id"]
        for ws in (one, two):
            events = receive_events(ws, 2, {tx})
            assert [e["event"] for e in events] == ["transaction.created", "transaction.completed"]
            assert events[0]["amount"] == "3.00" and events[0]["from_account"] == a


def test_customer_stream_sees_only_own_events(server: ApiServer, client: httpx.Client, api_db_url: str) -> None:
    from .conftest import make_key

    mine = open_account(client, "ws-cust-1", "100.00")
    other = open_account(client, "ws-cust-2", "100.00")
    key = make_key(api_db_url, "customer", owner_id="ws-cust-1")
    with connect(ws_url(server), additional_headers=auth(key), open_timeout=WS_TIMEOUT_S) as ws:
        hidden = client.post("/api/v1/transactions", json=transfer(other, open_account(client, "ws-x", None))).json()
        shown = client.post("/api/v1/transactions", json=transfer(other, mine)).json()
        event = json.loads(ws.recv(timeout=WS_TIMEOUT_S))
        assert event["transaction_id"] == shown["id"] != hidden["id"]


@pytest.fixture()
def redis_pair(api_db_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[ApiServer, ApiServer]]:
    one = start_server(api_db_url, tmp_path_factory.mktemp("redis-one"), QENEX_REDIS_URL=redis_url)
    two = start_server(api_db_url, tmp_path_factory.mktemp("redis-two"), QENEX_REDIS_URL=redis_url)
    yield one, two
    one.stop()
    two.stop()


def test_stream_fans_out_through_redis_across_processes(redis_pair: tuple[ApiServer, ApiServer], redis_url: str,
                                                        admin_key: str) -> None:
    import redis

    from qenex.api.app import database_namespace
    from qenex.api.stream import REDIS_PREFIX

    one, two = redis_pair
    http = httpx.Client(base_url=one.url, headers=auth(admin_key), timeout=30)
    a, b = open_account(http, "redis-a", "10.00"), open_account(http, "redis-b", None)
    bus = redis.Redis.from_url(redis_url).pubsub()
    bus.subscribe(f"{REDIS_PREFIX}:{database_namespace(one.db_url)}:events")
    with connect(ws_url(two), additional_headers=auth(admin_key), open_timeout=WS_TIMEOUT_S) as ws_two, \
            connect(ws_url(one), additional_headers=auth(admin_key), open_timeout=WS_TIMEOUT_S) as ws_one:
        tx = http.post("/api/v1/transactions", json=transfer(a, b)).json()["id"]  # made on server one
        for ws in (ws_two, ws_one):  # each subscriber gets each event exactly once
            events = receive_events(ws, 2, {tx})
            assert [e["event"] for e in events] == ["transaction.created", "transaction.completed"]
        published = []
        for _ in range(200):
            message = bus.get_message(timeout=0.1)
            if message and message["type"] == "message":
                published.append(json.loads(message["data"]))
            if sum(1 for e in published if e["transaction_id"] == tx) == 2:
                break
        assert sum(1 for e in published if e["transaction_id"] == tx) == 2  # through Redis, once
    bus.close()
    http.close()


def test_stream_survives_the_loss_of_either_process(redis_pair: tuple[ApiServer, ApiServer], admin_key: str) -> None:
    """Whichever process held the Redis lease, after one process dies the other keeps (or takes
    over) following the journal, so its subscribers still get every new event."""
    one, two = redis_pair
    one.stop()
    http = httpx.Client(base_url=two.url, headers=auth(admin_key), timeout=30)
    a, b = open_account(http, "failover-a", "10.00"), open_account(http, "failover-b", None)
    with connect(ws_url(two), additional_headers=auth(admin_key), open_timeout=WS_TIMEOUT_S) as ws:
        tx = http.post("/api/v1/transactions", json=transfer(a, b)).json()["id"]
        events = receive_events(ws, 2, {tx})  # within the lease expiry (5 s) plus the receive timeout
        assert [e["event"] for e in events] == ["transaction.created", "transaction.completed"]
    http.close()
