"""SQLite through the standard ``sqlite3`` module: the zero-configuration default.

One connection, used from a thread pool of exactly one thread, so that all
database work is serialised without blocking the reactor. The connection runs
in autocommit mode and every transaction starts with ``BEGIN IMMEDIATE``, which
takes the write lock up front (no lock-upgrade deadlocks if another process
opens the same file). Durability: write-ahead logging with ``synchronous=FULL``,
so a committed transaction survives a crash or power loss
(https://www.sqlite.org/pragma.html#pragma_synchronous).
"""

import sqlite3

from twisted.enterprise import adbapi
from zope.interface import implementer

from mxref.storage.engines.base import IDatabaseEngine


@implementer(IDatabaseEngine)
class SqliteEngine:
    """SQLite dialect and connection set-up.

    :param args: the ``args`` of the database config: ``database`` is a file
        path or ``":memory:"``. Other keys (e.g. ``cp_min``) are ignored: the
        pool always has exactly one connection.
    """

    name = "sqlite3"
    schema_suffix = "sqlite"

    def __init__(self, args: dict):
        self.database = args.get("database", ":memory:")
        self.in_memory = self.database == ":memory:" or self.database.startswith("file::memory:")

    def make_pool(self, reactor):
        """A pool with one thread and one connection, which never reconnects
        (an in-memory database lives only as long as its connection)."""
        return adbapi.ConnectionPool(
            "sqlite3",
            self.database,
            check_same_thread=False,
            isolation_level=None,
            timeout=30.0,
            cp_min=1,
            cp_max=1,
            cp_reconnect=False,
            cp_noisy=False,
            cp_openfun=self._prepare_connection,
            cp_reactor=reactor,
        )

    def _prepare_connection(self, connection):
        if not self.in_memory:
            connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=OFF")

    def convert_placeholders(self, sql):
        """``sqlite3`` uses ``?`` natively."""
        return sql

    def begin(self, connection):
        """Take the write lock at the start of the transaction."""
        connection.execute("BEGIN IMMEDIATE")

    def execute_many(self, cursor, sql, rows):
        """``executemany`` is fast in ``sqlite3``."""
        cursor.executemany(sql, rows)

    def is_transient_error(self, error):
        """A busy or locked database (another process holds the lock)."""
        if isinstance(error, sqlite3.OperationalError):
            message = str(error).lower()
            return "locked" in message or "busy" in message
        return False
