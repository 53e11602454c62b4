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
    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._secret = secret
        self._ttl = ttl_seconds

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
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["sub", "role", "exp", "iat"]},
            )
            return Principal(str(claims["sub"]), Role(claims["role"]))
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except (jwt.InvalidTokenError, ValueError, KeyError):
            raise InvalidToken("invalid token") from None
