"""The forwarder's HTTP client, seen from a stand-in owner that records what reaches it: the
requests to one owner share one kept-alive connection, carry the caller's headers and nothing
the client would add of its own, keep the caller's path as written, and the owner's answer
comes back as it left (a repeated header as one, its values joined)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from core.http.forwarding import KEEP_ALIVE_S
from core.placement import Elsewhere
from tests.e2e.test_routing import instance

ANSWER_BODY = b'{"answered": "by the owner"}'
ANSWER = (
    b"HTTP/1.1 201 Created\r\n"
    b"Content-Type: application/json\r\n"
    b'ETag: "7"\r\n'
    b"Location: /accounts/acc-1\r\n"
    b"Balance-Note: one\r\n"
    b"Balance-Note: two\r\n"
    b"Set-Cookie: owner=1\r\n"
    b"Content-Length: " + str(len(ANSWER_BODY)).encode() + b"\r\n"
    b"\r\n" + ANSWER_BODY
)


@dataclass
class Owner:
    """What reached the stand-in owner: the connections, and each request's line, headers
    (lower-case names, in order) and body."""

    url: str = ""
    connections: int = 0
    requests: list[tuple[str, list[tuple[str, str]], bytes]] = field(default_factory=list)

    def headers(self, number: int) -> dict[str, str]:
        return dict(self.requests[number][1])


@asynccontextmanager
async def stand_in_owner() -> AsyncIterator[Owner]:
    """An HTTP/1.1 server that answers every request on a connection with ``ANSWER`` and keeps
    the connection open until the client closes it."""
    owner = Owner()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        owner.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                line, *lines = head.split("\r\n")
                headers = [
                    (name.lower(), value)
                    for name, _, value in (item.partition(": ") for item in lines if item)
                ]
                length = int(dict(headers).get("content-length", "0"))
                owner.requests.append((line, headers, await reader.readexactly(length)))
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    owner.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield owner
    finally:
        server.close()
        await server.wait_closed()


async def test_forwarded_requests_share_one_connection_and_carry_the_callers_headers(
    tmp_path: Path,
) -> None:
    async with stand_in_owner() as owner, instance(tmp_path, "a") as a:
        a.route("acc-1", Elsewhere(owner.url))
        token = a.auth()["Authorization"]
        for number in range(3):
            sent = {
                "Authorization": token,
                "Idempotency-Key": f"deposit-{number}",
                "X-Request-ID": f"req-{number}",
                "Cookie": "caller=1",
                "User-Agent": "the-callers-agent",
            }
            response = await a.post("/accounts/acc-1/deposits", {"amount": "5.00"}, sent)

            assert response.status_code == 201, response.text
            assert response.content == ANSWER_BODY
            assert response.headers["content-type"].startswith("application/json")
            assert response.headers["etag"] == '"7"'
            assert response.headers["location"] == "/accounts/acc-1"
            assert response.headers["balance-note"] == "one, two"
            assert response.headers["x-request-id"] == f"req-{number}"
        assert await a.forwarded("answered") == 3

    assert owner.connections == 1  # kept alive, and used again
    assert [line for line, _, _ in owner.requests] == ["POST /accounts/acc-1/deposits HTTP/1.1"] * 3
    for number, (_, _, body) in enumerate(owner.requests):
        headers = owner.headers(number)
        assert headers["authorization"] == token
        assert headers["idempotency-key"] == f"deposit-{number}"
        assert headers["x-request-id"] == f"req-{number}"
        assert headers["balance-forward-hops"] == "1"
        assert headers["content-type"] == "application/json"
        assert body == b'{"amount":"5.00"}'
        # Not the caller's cookies or agent, nor any the client would add (the owner's cookie
        # of the previous answer included).
        assert "cookie" not in headers
        assert "user-agent" not in headers


async def test_a_forwarded_request_keeps_the_callers_path_and_adds_no_content_type(
    tmp_path: Path,
) -> None:
    """The path goes on with its percent-escapes as the caller wrote them (``%7E`` is not
    turned into ``~``); a request without a body or a ``Content-Type`` gets none."""
    async with stand_in_owner() as owner, instance(tmp_path, "a") as a:
        a.route("acc~1", Elsewhere(owner.url))

        response = await a.client.delete("/accounts/acc%7E1", headers=a.auth())

        assert response.status_code == 201, response.text
    ((line, headers, body),) = owner.requests
    assert line == "DELETE /accounts/acc%7E1 HTTP/1.1"
    assert body == b""
    assert "content-type" not in dict(headers)
    assert dict(headers)["balance-forward-hops"] == "1"


async def test_each_owner_has_its_own_kept_alive_connection(tmp_path: Path) -> None:
    async with (
        stand_in_owner() as first,
        stand_in_owner() as second,
        instance(tmp_path, "a") as a,
    ):
        a.route("acc-1", Elsewhere(first.url))
        a.route("acc-2", Elsewhere(second.url))
        for account in ("acc-1", "acc-2", "acc-1", "acc-2"):
            response = await a.post(f"/accounts/{account}/deposits", {"amount": "1.00"})
            assert response.status_code == 201, response.text

    assert (first.connections, second.connections) == (1, 1)
    assert [line for line, _, _ in first.requests] == ["POST /accounts/acc-1/deposits HTTP/1.1"] * 2
    assert [line for line, _, _ in second.requests] == [
        "POST /accounts/acc-2/deposits HTTP/1.1"
    ] * 2


def test_an_idle_connection_is_let_go_before_the_owner_closes_it() -> None:
    """``balance serve`` leaves uvicorn's idle timeout as it is; the forwarder stops using an idle
    connection before it, so it never sends a command on one the owner is closing."""
    assert uvicorn.Config(app=None).timeout_keep_alive > KEEP_ALIVE_S
