"""A PostgreSQL server for the tests, when one is reachable; a clear skip when not.

The server's URL comes from ``$AUTOMETA_TEST_POSTGRES_URL`` (a SQLAlchemy URL
such as ``postgresql+psycopg2://autometa@127.0.0.1:5433/autometa_test``);
``.ci/run`` starts a throwaway server with ``.ci/postgres.sh`` and sets it.
Each test gets a database of its own, created from that URL's server and
dropped afterwards, so tests that list every study of a storage see only
their own.
"""

from __future__ import annotations

import functools
import os
import uuid

import pytest

ENV = "AUTOMETA_TEST_POSTGRES_URL"
HOW = (
    f"set {ENV} to a SQLAlchemy URL of a server where the user may create databases "
    "(e.g. postgresql+psycopg2://autometa@127.0.0.1:5433/autometa_test), or start one with "
    '`eval "$(bash .ci/postgres.sh start)"`'
)


@functools.cache
def server() -> tuple[str | None, str]:
    """The base URL of a reachable server, or None and why not."""
    url = os.environ.get(ENV)
    if not url:
        return None, f"no PostgreSQL server reachable: {ENV} is not set; {HOW}"
    try:
        import sqlalchemy
    except ImportError as error:  # pragma: no cover - optuna requires sqlalchemy
        return None, f"no PostgreSQL server reachable: {error}"
    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5}, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except Exception as error:  # a missing driver, a refused connection, bad credentials...
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return None, f"no PostgreSQL server reachable: {ENV}={url!r} fails ({type(error).__name__}: {first_line}); {HOW}"
    return url, ""


def _reason() -> str:
    return server()[1]


#: Marks a test that needs the server; it skips, saying why, without one.
requires_postgres = pytest.mark.skipif(server()[0] is None, reason=_reason() or "a PostgreSQL server is reachable")


def _admin(sql: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(server()[0], isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(sql))
    engine.dispose()


@pytest.fixture
def postgres_url():
    """The URL of a fresh, empty database on the test server, dropped after the test."""
    base, reason = server()
    if base is None:
        pytest.skip(reason)
    import sqlalchemy

    name = f"autometa_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE {name}")
    try:
        yield sqlalchemy.make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
