"""The JSON API, to set the scene and to make changes behind a page's back."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.app import PASSWORD
from tests.support.stack import Stack

ITEMS = "/api/v1/inventory/items"
WAIT = {"Prefer": "wait=20"}


class Api:
    """Bearer-token client of the command and query services, one token per user."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._tokens: dict[str, str] = {}
        self._client = httpx.Client(timeout=30)

    def close(self) -> None:
        self._client.close()

    def _headers(self, user: str) -> dict[str, str]:
        if user not in self._tokens:
            response = self._client.post(
                f"{self._stack.command.url}/api/v1/auth/login", json={"username": user, "password": PASSWORD}
            )
            response.raise_for_status()
            self._tokens[user] = response.json()["token"]
        return {"Authorization": f"Bearer {self._tokens[user]}"}

    def create_item(
        self,
        sku: str,
        name: str,
        *,
        quantity: int = 0,
        location: str | None = None,
        description: str | None = None,
        low_stock_threshold: int | None = None,
        user: str = "manager",
    ) -> dict[str, Any]:
        """Create an item and wait until it is applied; the item as the command service returns it."""
        body: dict[str, Any] = {"sku": sku, "name": name, "quantity": quantity}
        if location is not None:
            body["location"] = location
        if description is not None:
            body["description"] = description
        if low_stock_threshold is not None:
            body["low_stock_threshold"] = low_stock_threshold
        response = self._client.post(
            f"{self._stack.command.url}{ITEMS}", json=body, headers={**self._headers(user), **WAIT}
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def move(
        self, item_id: str, action: str, quantity: int, *, location: str | None = None, user: str = "clerk"
    ) -> httpx.Response:
        """Reserve, release or adjust stock and wait for the outcome (200 applied, 409 rejected)."""
        body: dict[str, Any] = {"quantity": quantity}
        if location is not None:
            body["location"] = location
        return self._client.post(
            f"{self._stack.command.url}{ITEMS}/{item_id}/{action}", json=body, headers={**self._headers(user), **WAIT}
        )

    def command(self, item_id: str, action: str, body: dict[str, Any], *, user: str = "clerk") -> httpx.Response:
        """Any command on an item (ship, receive, commit-reservation...), waiting for its outcome."""
        return self._client.post(
            f"{self._stack.command.url}{ITEMS}/{item_id}/{action}", json=body, headers={**self._headers(user), **WAIT}
        )

    def item(self, item_id: str, user: str = "viewer") -> dict[str, Any]:
        """The item as the query service reads it."""
        response = self._client.get(f"{self._stack.query.url}{ITEMS}/{item_id}", headers=self._headers(user))
        response.raise_for_status()
        return dict(response.json())
