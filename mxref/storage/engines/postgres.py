"""PostgreSQL through ``psycopg2`` and ``twisted.enterprise.adbapi``: for production.

Transactions run at PostgreSQL's default isolation level (READ COMMITTED);
writers that must be ordered (the stream counters) are serialised by row locks
taken inside the transaction. Durability is PostgreSQL's default
(``synchronous_commit = on``); a warning is logged if the server has it off.
"""

from twisted.enterprise import adbapi
from twisted.logger import Logger
from zope.interface import implementer

from mxref.storage.engines.base import IDatabaseEngine, qmark_to_format

# SQLSTATE codes: serialization_failure, deadlock_detected.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})


@implementer(IDatabaseEngine)
class PostgresEngine:
    """PostgreSQL dialect and connection set-up.

    :param args: the ``args`` of the database config: libpq connection
        parameters (``user``, ``password``, ``dbname`` or ``database``,
        ``host``, ``port``, ...) plus ``cp_min``/``cp_max`` for the pool size.
    """

    name = "psycopg2"
    schema_suffix = "postgres"
    log = Logger()

    def __init__(self, args: dict):
        import psycopg2  # noqa: F401  (fail early, with a clear ImportError, if missing)

        self.pool_args = {k: v for k, v in args.items() if k.startswith("cp_")}
        self.connect_args = {k: v for k, v in args.items() if not k.startswith("cp_")}
        if "database" in self.connect_args and "dbname" not in self.connect_args:
            self.connect_args["dbname"] = self.connect_args.pop("database")

    def make_pool(self, reactor):
        """A pool of ``cp_min``..``cp_max`` connections (default 1..5) that reconnects."""
        return adbapi.ConnectionPool(
            "psycopg2",
            cp_min=self.pool_args.get("cp_min", 1),
            cp_max=self.pool_args.get("cp_max", 5),
            cp_reconnect=True,
            cp_noisy=False,
            cp_openfun=self._prepare_connection,
            cp_reactor=reactor,
            **self.connect_args,
        )

    def _prepare_connection(self, connection):
        connection.set_client_encoding("UTF8")
        cursor = connection.cursor()
        cursor.execute("SHOW synchronous_commit")
        (setting,) = cursor.fetchone()
        cursor.close()
        connection.rollback()
        if setting == "off":
            self.log.warn(
                "PostgreSQL has synchronous_commit=off: acknowledged events may be lost in a crash"
            )

    def convert_placeholders(self, sql):
        """psycopg2 uses ``%s`` placeholders."""
        return qmark_to_format(sql)

    def begin(self, connection):
        """psycopg2 opens a transaction implicitly at the first statement."""

    def execute_many(self, cursor, sql, rows):
        """Batch rows into few round trips."""
        from psycopg2.extras import execute_batch

        execute_batch(cursor, sql, rows, page_size=200)

    def is_transient_error(self, error):
        """Serialisation failures and deadlocks."""
        return getattr(error, "pgcode", None) in _TRANSIENT_SQLSTATES
