"""JWT access tokens (HS256), valid on every role because every role shares the secret."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import jwt

from app.auth.roles import Role

ALGORITHM = "HS256"
ISSUER = "inventory"


@dataclass(frozen=True)
class Principal:
    username: str
    role: Role

    def can(self, needed: Role) -> bool:
        return self.role.includes(needed)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    expires_at: int


class InvalidToken(ValueError):
    pass


class TokenService:
    # Verified tokens are remembered until they expire: a client sends the same one many times.
    CACHE_SIZE = 10_000

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._secret = secret
        self._ttl = ttl_seconds
        self._verified: dict[str, tuple[Principal, float]] = {}

    def issue(self, principal: Principal, *, now: float | None = None) -> IssuedToken:
        issued = int(now if now is not None else time.time())
        expires = issued + self._ttl
        claims = {
            "sub": principal.username,
            "role": principal.role.value,
            "iat": issued,
            "exp": expires,
            "iss": ISSUER,
            "jti": secrets.token_hex(8),
        }
        return IssuedToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), self._ttl, expires)

    def verify(self, token: str) -> Principal:
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
            return Principal(str(claims["sub"]), Role(claims["role"])), float(claims["exp"])
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except (jwt.InvalidTokenError, ValueError, KeyError):
            raise InvalidToken("invalid token") from None
