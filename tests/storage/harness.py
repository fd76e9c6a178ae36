"""Backends for the storage conformance suites, and a small event factory.

A conformance mixin (``EventStoreConformanceMixin`` etc.) uses ``self.store``
(a :class:`~mxref.storage.sql.store.SqlStore`-shaped object) and is combined
with one backend mixin below and ``unittest.TestCase``:

* :class:`SqliteBackendMixin`: a fresh SQLite file per test.
* :class:`PostgresBackendMixin`: a fresh PostgreSQL database per test on the
  server named by ``MXREF_TEST_POSTGRES`` (a libpq DSN); skipped if the
  variable is unset, failing if the server cannot be reached.
"""

import itertools
import os
import uuid

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import SkipTest

from mxref.storage.database import make_database
from mxref.storage.records import EventToPersist
from mxref.storage.sql.store import make_store

POSTGRES_ENV = "MXREF_TEST_POSTGRES"


def sqlite_config(path):
    """A Synapse-shaped database config for an SQLite file."""
    return {"name": "sqlite3", "args": {"database": path}}


def postgres_admin_dsn():
    """The DSN from ``MXREF_TEST_POSTGRES``; raises SkipTest if it is unset."""
    dsn = os.environ.get(POSTGRES_ENV)
    if not dsn:
        raise SkipTest(f"PostgreSQL tests need {POSTGRES_ENV} (a libpq DSN); it is not set")
    return dsn


def _admin_command(dsn, sql):
    import psycopg2

    connection = psycopg2.connect(dsn)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def create_postgres_database(dsn):
    """Create a uniquely named database (blocking).

    :returns: ``(database_config, drop)`` where ``drop()`` deletes it again.
    """
    from psycopg2.extensions import parse_dsn

    name = "mxref_test_" + uuid.uuid4().hex[:16]
    _admin_command(dsn, f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0")
    args = dict(parse_dsn(dsn))
    args.pop("dbname", None)
    args.pop("database", None)
    args.update({"dbname": name, "cp_min": 1, "cp_max": 4})

    def drop():
        _admin_command(dsn, f"DROP DATABASE IF EXISTS {name}")

    return {"name": "psycopg2", "args": args}, drop


class SqliteBackendMixin:
    """Gives each test ``self.store`` and ``self.database_config`` on a new SQLite file."""

    backend = "sqlite3"
    snapshot_interval = 100

    def make_database_config(self):
        """A config for a fresh, empty database."""
        return sqlite_config(os.path.abspath(self.mktemp() + ".db"))

    @defer.inlineCallbacks
    def setUp(self):
        self.database_config = self.make_database_config()
        self.database = yield make_database(self.database_config, reactor)
        self.addCleanup(self.database.close)
        self.store = make_store(self.database, snapshot_interval=self.snapshot_interval)


class PostgresBackendMixin(SqliteBackendMixin):
    """Gives each test ``self.store`` on a new PostgreSQL database, dropped afterwards."""

    backend = "psycopg2"

    @defer.inlineCallbacks
    def setUp(self):
        dsn = postgres_admin_dsn()
        self.database_config, drop = yield threads.deferToThread(create_postgres_database, dsn)
        self.addCleanup(threads.deferToThread, drop)
        self.database = yield make_database(self.database_config, reactor)
        self.addCleanup(self.database.close)
        self.store = make_store(self.database, snapshot_interval=self.snapshot_interval)

    def make_database_config(self):
        """A config for a further fresh database (dropped after the test)."""
        config, drop = create_postgres_database(postgres_admin_dsn())
        self.addCleanup(threads.deferToThread, drop)
        return config


class EventFactory:
    """Builds :class:`EventToPersist` values for a test room with unique IDs."""

    _ids = itertools.count(1)

    def __init__(self, room_id="!room:example.org", server="example.org"):
        self.room_id = room_id
        self.server = server

    def make(self, event_type, sender="@alice:example.org", depth=1, prev=(), auth=(), state_key=None,
             content=None, event_id=None, ts=1_700_000_000_000, room_id=None, **decisions):
        """An event with sensible defaults; ``decisions`` go to :class:`EventToPersist`."""
        event_id = event_id or f"${next(self._ids)}_{uuid.uuid4().hex[:8]}:{self.server}"
        pdu = {
            "room_id": room_id or self.room_id,
            "type": event_type,
            "sender": sender,
            "depth": depth,
            "origin_server_ts": ts,
            "content": content if content is not None else {},
            "prev_events": list(prev),
            "auth_events": list(auth),
            "hashes": {"sha256": "x"},
            "signatures": {},
        }
        if state_key is not None:
            pdu["state_key"] = state_key
        return EventToPersist.from_pdu(event_id, pdu, **decisions)

    def member(self, user_id, membership="join", **kwargs):
        """An ``m.room.member`` event for ``user_id``."""
        return self.make(
            "m.room.member", sender=kwargs.pop("sender", user_id), state_key=user_id,
            content={"membership": membership}, **kwargs
        )
