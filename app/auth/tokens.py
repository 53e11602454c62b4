"""JWT access tokens (HS256), valid on every role because every role shares the secret."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Protocol

import jwt

from app.auth.roles import Role
from app.metrics import track_size

ALGORITHM = "HS256"
ISSUER = "inventory"


@dataclass(frozen=True)
class Principal:
    username: str
    role: Role
    # What the token was issued against (app/auth/revocation.py): the user's epoch then, the
    # session it stands for (its ``jti``), when it was issued and when it expires.
    epoch: int = 0
    session: str = ""
    issued_at: int = 0
    expires_at: int = 0
    # The locations this principal may act on and open pages for; empty: every location.
    locations: frozenset[str] = frozenset()
    # "user": a person who logged in. "kiosk": a read-only wall link (app/auth/kiosk.py), which
    # may open only its wall and the wall's stream.
    kind: str = "user"

    def can(self, needed: Role) -> bool:
        return self.role.includes(needed)

    @property
    def is_kiosk(self) -> bool:
        return self.kind == "kiosk"

    def may_act_at(self, location: str) -> bool:
        return not self.locations or location in self.locations


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    expires_at: int


def _locations(claim: object) -> frozenset[str]:
    if claim is None:
        return frozenset()
    if not isinstance(claim, list) or not all(isinstance(code, str) for code in claim):
        raise ValueError("bad loc claim")
    return frozenset(claim)


class InvalidToken(ValueError):
    pass


class RevocationCheck(Protocol):
    def allows(self, principal: Principal) -> bool: ...


class TokenService:
    # Verified tokens are remembered until they expire: a client sends the same one many times.
    CACHE_SIZE = 10_000

    def __init__(self, secret: str, ttl_seconds: int, revocations: RevocationCheck | None = None) -> None:
        self._secret = secret
        self._ttl = ttl_seconds
        self._verified: dict[str, tuple[Principal, float]] = {}
        # Asked after the signature on every request: a dictionary and a set lookup.
        self.revocations = revocations
        track_size("verified_tokens", self.CACHE_SIZE, lambda: len(self._verified))

    def issue(self, principal: Principal, *, now: float | None = None) -> IssuedToken:
        issued = int(now if now is not None else time.time())
        expires = issued + self._ttl
        claims: dict[str, object] = {
            "sub": principal.username,
            "role": principal.role.value,
            "iat": issued,
            "exp": expires,
            "iss": ISSUER,
            "jti": secrets.token_hex(8),
            "ep": principal.epoch,
        }
        if principal.locations:
            claims["loc"] = sorted(principal.locations)
        return IssuedToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), self._ttl, expires)

    def verify(self, token: str) -> Principal:
        principal = self._verify_signed(token)
        if self.revocations is not None and not self.revocations.allows(principal):
            raise InvalidToken("token revoked")
        return principal

    def _verify_signed(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            principal, expires = known
            if time.time() < expires:
                return principal
            del self._verified[token]
            raise InvalidToken("token expired")
        principal, expires = self._decode(token)
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (principal, expires)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["sub", "role", "exp", "iat"]},
            )
            principal = Principal(
                str(claims["sub"]),
                Role(claims["role"]),
                epoch=int(claims.get("ep", 0)),
                session=str(claims.get("jti", "")),
                issued_at=int(claims["iat"]),
                expires_at=int(claims["exp"]),
                locations=_locations(claims.get("loc")),
            )
            return principal, float(claims["exp"])
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except (jwt.InvalidTokenError, ValueError, KeyError, TypeError):
            raise InvalidToken("invalid token") from None
