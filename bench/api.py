"""The few API calls the harness makes itself: log in, create the item pool, wait for outcomes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from bench.httpclient import Connection, Endpoint, Response, encode_request
from bench.loadgen import ITEMS_PATH, command_id_of, gather_limited

LOGIN_PATH = "/api/v1/auth/login"


class ApiFailure(RuntimeError):
    pass


def _fail(what: str, response: Response) -> ApiFailure:
    return ApiFailure(f"{what}: HTTP {response.status} {response.body[:300]!r}")


class Client:
    """A handful of keep-alive connections to one service, for the harness's own calls."""

    def __init__(self, url: str, token: str | None = None, connections: int = 64) -> None:
        self.endpoint = Endpoint.parse(url)
        self.token = token
        self._size = connections
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(connections)

    def _headers(self, json_body: bool = False) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if json_body:
            headers["Content-Type"] = "application/json"
        return headers

    async def call(
        self, method: str, path: str, body: object | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        raw = encode_request(
            method,
            path,
            self.endpoint,
            {**self._headers(json_body=body is not None), **(headers or {})},
            json.dumps(body, separators=(",", ":")).encode() if body is not None else None,
        )
        async with self._slots:
            connection = self._idle.pop() if self._idle else await Connection.open(self.endpoint)
            try:
                response = await connection.request(raw)
            except BaseException:
                connection.close()
                raise
            if connection.closed:
                connection.close()
            else:
                self._idle.append(connection)
            return response

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()


async def login(url: str, username: str, password: str) -> str:
    client = Client(url, connections=1)
    try:
        for _ in range(20):
            response = await client.call("POST", LOGIN_PATH, {"username": username, "password": password})
            if response.status == 200:
                return str(json.loads(response.body)["token"])
            if response.status == 429:  # the login rate limit: wait as told
                await asyncio.sleep(float(response.headers.get(b"retry-after", b"5")))
                continue
            raise _fail(f"login as {username}", response)
        raise ApiFailure(f"login as {username}: still rate limited")
    finally:
        client.close()


@dataclass(frozen=True)
class CreatedItem:
    item_id: str
    command_id: str


async def create_items(client: Client, count: int, prefix: str, quantity: int) -> list[CreatedItem]:
    """Create ``count`` items (202s, concurrently); the caller waits for them to be applied."""

    async def create(index: int) -> CreatedItem:
        body = {"sku": f"{prefix}-{index:06d}", "name": f"Benchmark item {index}", "quantity": quantity}
        for _ in range(50):
            response = await client.call("POST", ITEMS_PATH, body)
            if response.status == 202:
                return CreatedItem(json.loads(response.body)["item_id"], command_id_of(response))
            if response.status != 503:
                break
            await asyncio.sleep(0.2)
        raise _fail(f"create item {body['sku']}", response)

    return await gather_limited([create(i) for i in range(count)], 64)


async def wait_applied(client: Client, command_ids: list[str], timeout: float) -> dict[str, str]:
    """Wait until none of the commands is pending; return each one's status."""
    statuses: dict[str, str] = {}
    pending = list(command_ids)
    deadline = asyncio.get_running_loop().time() + timeout

    async def status(command_id: str) -> tuple[str, str]:
        response = await client.call("GET", f"/api/v1/commands/{command_id}")
        if response.status == 404:  # the query side may not know it yet
            return command_id, "pending"
        if response.status != 200:
            raise _fail(f"status of {command_id}", response)
        return command_id, str(json.loads(response.body)["status"])

    while pending:
        for command_id, state in await gather_limited([status(c) for c in pending], 64):
            statuses[command_id] = state
        pending = [c for c in pending if statuses[c] == "pending"]
        if pending:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{len(pending)} commands still pending after {timeout:.0f} s")
            await asyncio.sleep(0.2)
    return statuses


async def item_versions(client: Client, item_ids: list[str]) -> dict[str, int]:
    async def version(item_id: str) -> tuple[str, int]:
        response = await client.call("GET", f"{ITEMS_PATH}/{item_id}")
        if response.status != 200:
            raise _fail(f"item {item_id}", response)
        return item_id, int(json.loads(response.body)["version"])

    return dict(await gather_limited([version(i) for i in item_ids], 64))
