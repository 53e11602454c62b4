"""The node's side of the listener's internal endpoints: a snapshot of the read model, and the
outbox's change records after a sequence (docs/scaling.md). Bearer ``settings.internal_token``."""

from __future__ import annotations

from pathlib import Path

import httpx
import msgspec

from app.domain.records import ChangesPage

SNAPSHOT_TIMEOUT = httpx.Timeout(30.0, read=300.0)
PAGE_TIMEOUT = httpx.Timeout(10.0)


class Unreachable(RuntimeError):
    """The listener did not answer (down, restarting, or answering 5xx): try again later."""


class Pruned(RuntimeError):
    """The changes after the asked sequence are no longer kept: take a snapshot."""


_decode_page = msgspec.json.Decoder(ChangesPage).decode


class ListenerClient:
    def __init__(self, listener_url: str, token: str) -> None:
        self._http = httpx.AsyncClient(
            base_url=listener_url, headers={"Authorization": f"Bearer {token}"}, timeout=PAGE_TIMEOUT
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def changes(self, after: int, limit: int) -> ChangesPage:
        try:
            response = await self._http.get("/internal/changes", params={"after": after, "limit": limit})
        except httpx.HTTPError as exc:
            raise Unreachable(f"listener unreachable: {exc!r}") from None
        if response.status_code == 410:
            raise Pruned(f"the listener no longer keeps the changes after {after}")
        _check(response)
        return _decode_page(response.content)

    async def snapshot(self, into: Path) -> int:
        """Download a snapshot into a file; returns the sequence it contains."""
        try:
            async with self._http.stream("GET", "/internal/snapshot", timeout=SNAPSHOT_TIMEOUT) as response:
                if response.status_code != 200:
                    await response.aread()
                    _check(response)
                seq = int(response.headers.get("X-Inventory-Seq", "0"))
                with into.open("wb") as handle:
                    async for chunk in response.aiter_bytes(1 << 20):
                        handle.write(chunk)
        except httpx.HTTPError as exc:
            raise Unreachable(f"snapshot download failed: {exc!r}") from None
        return seq


def _check(response: httpx.Response) -> None:
    if response.status_code >= 500:
        raise Unreachable(f"listener answered {response.status_code}")
    if response.status_code != 200:
        # 401 (another deployment's secret) or 404 (not a listener): the configuration is wrong,
        # but retrying is still all a node can do; the log line says why.
        raise Unreachable(f"listener refused: {response.status_code} {response.text[:200]}")
