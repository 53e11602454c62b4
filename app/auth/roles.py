"""Roles are a domain rule (app/domain/roles.py); authentication code imports them from here too."""

from app.domain.roles import Role

__all__ = ["Role"]
