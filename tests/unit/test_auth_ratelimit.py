"""The token endpoint's brute-force limit: lockout after 5 failures, recovery, success cap, proxies."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from ovsd.api.errors import from_auth_error
from ovsd.auth.accounts import create_client
from ovsd.auth.errors import RateLimited
from ovsd.auth.ratelimit import TokenRateLimit
from ovsd.store import keys
from ovsd.store.connection import Store
from tests.auth_support import AuthNode, NodeFactory, auth_nodes, node

__all__ = ["auth_nodes", "node"]  # fixtures


async def _client(node: AuthNode) -> tuple[str, str]:
    admin = await node.repository.find("user", "username", "admin")
    assert admin is not None
    client, secret = await create_client(node.repository, admin.guid, "automation")
    return client.guid, secret


def _retry_after(response: Any) -> int:
    return int(response.headers.getRawHeaders("Retry-After")[0])


@pytest_twisted.ensureDeferred
async def test_five_failures_lock_the_address_out_then_it_recovers(node: AuthNode) -> None:
    client_id, secret = await _client(node)
    for _ in range(4):
        status, body, _ = await node.client_credentials(client_id, "wrong")
        assert (status, body["error"]) == (400, "invalid_client")
        node.clock.advance(5)
    status, body, response = await node.client_credentials(client_id, "wrong")
    assert (status, body["error"]) == (429, "rate_limit_reached")
    assert _retry_after(response) == 60

    # locked: even the right secret is refused, with the seconds left
    status, body, response = await node.client_credentials(client_id, secret)
    assert (status, body["error"]) == (429, "rate_limit_timeout")
    assert "60s remaining" in body["error_description"]
    assert _retry_after(response) == 60
    node.clock.advance(45)
    status, body, response = await node.password()
    assert (status, body["error"]) == (429, "rate_limit_timeout")
    assert "15s remaining" in body["error_description"] and _retry_after(response) == 15

    node.clock.advance(15)
    status, body, _ = await node.client_credentials(client_id, secret)
    assert status == 200, body
    # the slate is clean: four more failures do not lock again
    for _ in range(4):
        status, body, _ = await node.client_credentials(client_id, "wrong")
        assert status == 400


@pytest_twisted.ensureDeferred
async def test_failures_spread_over_more_than_a_minute_do_not_lock(node: AuthNode) -> None:
    client_id, secret = await _client(node)
    for _ in range(12):
        status, body, _ = await node.client_credentials(client_id, "wrong")
        assert (status, body["error"]) == (400, "invalid_client")
        node.clock.advance(16)  # at most 4 failures in any 60 s
    status, body, _ = await node.client_credentials(client_id, secret)
    assert status == 200, body


@pytest_twisted.ensureDeferred
async def test_every_kind_of_failure_counts(node: AuthNode) -> None:
    await _client(node)
    await node.token({})  # invalid_request
    await node.token({"grant_type": "nope"})  # unsupported_grant_type
    await node.token({"grant_type": "client_credentials"})  # missing_header
    await node.password("admin", "wrong")  # invalid_client
    status, body, _ = await node.password("nobody", "wrong")
    assert (status, body["error"]) == (429, "rate_limit_reached")


@pytest_twisted.ensureDeferred
async def test_lockout_is_per_address_and_trusted_proxies_name_the_client(auth_nodes: NodeFactory) -> None:
    node = await auth_nodes(api={"trusted_proxies": ["127.0.0.0/8"]})
    client_id, secret = await _client(node)
    for _ in range(5):
        status, _, _ = await node.client_credentials(client_id, "wrong", headers={"X-Real-IP": "203.0.113.7"})
    assert status == 429
    assert await node.store.execute("GET", keys.auth_lockout("203.0.113.7")) is not None
    # the same proxy relaying another client is not locked out
    status, body, _ = await node.client_credentials(client_id, secret, headers={"X-Real-IP": "203.0.113.8"})
    assert status == 200, body
    # X-Forwarded-For's first entry is the client when there is no X-Real-IP
    status, body, _ = await node.client_credentials(
        client_id, secret, headers={"X-Forwarded-For": "203.0.113.7, 10.1.1.1"})
    assert (status, body["error"]) == (429, "rate_limit_timeout")


@pytest_twisted.ensureDeferred
async def test_an_untrusted_peer_cannot_choose_its_address(node: AuthNode) -> None:
    client_id, secret = await _client(node)
    for n in range(5):
        status, _, _ = await node.client_credentials(client_id, "wrong", headers={"X-Real-IP": f"198.51.100.{n}"})
    assert status == 429  # all five were counted against the TCP peer
    assert await node.store.execute("GET", keys.auth_lockout("127.0.0.1")) is not None
    status, body, _ = await node.client_credentials(client_id, secret, headers={"X-Real-IP": "198.51.100.99"})
    assert (status, body["error"]) == (429, "rate_limit_timeout")


@pytest_twisted.ensureDeferred
async def test_sixty_successes_a_minute_per_address(store: Store) -> None:
    clock = Clock()
    clock.advance(1_000_000)
    limit = TokenRateLimit(store, (), clock.seconds)
    for _ in range(60):
        await limit.check("192.0.2.1")
        await limit.record_success("192.0.2.1")
        clock.advance(0.5)
    with pytest.raises(RateLimited) as refused:
        await limit.check("192.0.2.1")
    answer = from_auth_error(refused.value)
    assert (answer.status, answer.code) == (429, "rate_limit_reached")
    assert answer.headers["Retry-After"] == "30"  # the first of the 60 leaves the window in 30 s
    await limit.check("192.0.2.2")  # another address is not affected
    clock.advance(30)
    await limit.check("192.0.2.1")
