"""Helpers for the browser tests: the JSON API as a side channel, and page actions."""
