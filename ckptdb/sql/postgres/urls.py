"""What the backend reads from a postgresql:// URL: asyncpg's DSN and the names messages show."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def asyncpg_dsn(url: str) -> str:
    """asyncpg takes only postgresql:// and postgres://, not SQLAlchemy's postgresql+driver://."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


def server_address(url: str) -> str:
    """host:port for messages (libpq's defaults when the URL leaves them out)."""
    parts = urlsplit(url)
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    return f"{parts.hostname or 'localhost'}:{port}"


def database_and_user(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return (parts.username or "(default user)", parts.path.lstrip("/") or "(default database)")
