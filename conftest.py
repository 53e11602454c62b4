"""Fixtures every suite shares (tests/ and e2e/): the real Kafka broker and Redis."""

pytest_plugins = ["tests.support.fixtures"]
