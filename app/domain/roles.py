"""Who may do what: each role includes the rights of the ones before it. The command catalogue
(app/domain/catalogue) names the role each command needs; the HTTP guards enforce it."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"  # read, wall
    CLERK = "clerk"  # stock commands
    MANAGER = "manager"  # item commands
    ADMIN = "admin"  # users, dead letters

    @property
    def rank(self) -> int:
        # Every guard asks: a lookup, not a walk over the members.
        return _RANKS[self]

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANKS = {role: rank for rank, role in enumerate(Role)}
