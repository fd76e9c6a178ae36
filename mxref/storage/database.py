"""The database handle: runs transactions in a thread pool and applies the schema.

:func:`make_database` takes the ``database`` section of the configuration in
Synapse's shape::

    {"name": "sqlite3", "args": {"database": "/var/lib/mxref/homeserver.db"}}
    {"name": "psycopg2", "args": {"user": ..., "password": ..., "dbname": ...,
                                  "host": ..., "port": ..., "cp_min": 1, "cp_max": 5}}

and returns a :class:`Database` whose schema is up to date. Storage classes run
their SQL through :meth:`Database.run_interaction`; the function they pass gets
a :class:`Transaction`, whose ``execute`` takes SQL with ``?`` placeholders on
every engine.
"""

import json
import os
import re
import sqlite3

from twisted.internet import defer
from twisted.logger import Logger

from mxref.storage.engines.postgres import PostgresEngine
from mxref.storage.engines.sqlite import SqliteEngine

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema")

_ENGINES = {
    "sqlite3": SqliteEngine,
    "sqlite": SqliteEngine,
    "psycopg2": PostgresEngine,
    "postgres": PostgresEngine,
}

# Attempts for a transaction failing with a transient error (see IDatabaseEngine).
_MAX_ATTEMPTS = 5

# Engines accept at least this many bound parameters per statement.
_IN_LIST_CHUNK = 500

_SURROGATE = re.compile("[\ud800-\udfff]")

# Engines whose UPDATE can return the updated row (one round trip instead of two when a
# counter advances): PostgreSQL, and SQLite from 3.35.
_SUPPORTS_RETURNING = {
    "psycopg2": True,
    "sqlite3": sqlite3.sqlite_version_info >= (3, 35, 0),
}


def encode_json(value) -> str:
    """Serialise a JSON value for a TEXT column.

    Non-ASCII text is kept as UTF-8 (compact). Lone surrogates, which UTF-8
    cannot carry, are written as ``\\u`` escapes instead.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if _SURROGATE.search(text):
        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text


def decode_json(text):
    """Parse a JSON TEXT column (``None`` stays ``None``)."""
    return None if text is None else json.loads(text)


def chunks(values, size=_IN_LIST_CHUNK):
    """Split a sequence into lists of at most ``size`` items (for ``IN`` lists)."""
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]


def in_list(column: str, values) -> tuple:
    """An ``column IN (?, ?, ...)`` clause and its arguments.

    :param values: a non-empty sequence (callers chunk long lists with :func:`chunks`).
    :returns: ``(sql, args)``.
    """
    values = list(values)
    return f"{column} IN ({', '.join('?' for _ in values)})", values


class Transaction:
    """A cursor that speaks ``?`` placeholders, handed to interaction functions.

    :ivar engine: the :class:`~mxref.storage.engines.base.IDatabaseEngine`.
    :ivar description: what the transaction is for (for logs).
    """

    def __init__(self, engine, cursor, description):
        self.engine = engine
        self.description = description
        self._cursor = cursor

    def execute(self, sql, args=()):
        """Execute one statement.

        :returns: ``self``, so that ``txn.execute(...).fetchall()`` reads naturally.
        """
        self._cursor.execute(self.engine.convert_placeholders(sql), tuple(args))
        return self

    def execute_many(self, sql, rows):
        """Execute one statement for each parameter tuple in ``rows``."""
        rows = [tuple(row) for row in rows]
        if rows:
            self.engine.execute_many(self._cursor, self.engine.convert_placeholders(sql), rows)

    def fetchone(self):
        """The next row as a tuple, or ``None``."""
        return self._cursor.fetchone()

    def fetchall(self):
        """All remaining rows as a list of tuples."""
        return [tuple(row) for row in self._cursor.fetchall()]

    @property
    def rowcount(self):
        """Rows changed by the last statement."""
        return self._cursor.rowcount

    def select(self, sql, args=()):
        """Execute a query and return all its rows."""
        return self.execute(sql, args).fetchall()

    def select_value(self, sql, args=(), default=None):
        """Execute a query and return the first column of its first row, or ``default``."""
        row = self.execute(sql, args).fetchone()
        return default if row is None else row[0]

    def select_in(self, sql_template, column, values, args_before=(), args_after=()):
        """Run a query once per chunk of ``values`` and concatenate the rows.

        :param sql_template: SQL containing ``{in_list}``, replaced by
            ``column IN (?, ...)``.
        """
        rows = []
        for chunk in chunks(values):
            clause, chunk_args = in_list(column, chunk)
            rows.extend(
                self.select(
                    sql_template.format(in_list=clause),
                    list(args_before) + chunk_args + list(args_after),
                )
            )
        return rows

    def upsert(self, table, key_values, values):
        """Insert a row, or update ``values`` in the row with ``key_values`` if there is one.

        Uses ``INSERT ... ON CONFLICT (...) DO UPDATE``, which SQLite (3.24+)
        and PostgreSQL (9.5+) both understand.

        :param key_values: ``{column: value}`` of a unique key.
        :param values: ``{column: value}`` of the other columns (may be empty:
            then an existing row is left alone).
        :returns: the number of rows inserted or updated.
        """
        columns = list(key_values) + list(values)
        placeholders = ", ".join("?" for _ in columns)
        if values:
            action = "UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in values)
        else:
            action = "NOTHING"
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
            f" ON CONFLICT ({', '.join(key_values)}) DO {action}"
        )
        self.execute(sql, list(key_values.values()) + list(values.values()))
        return self.rowcount

    def lock_counter(self, name):
        """Take the row lock of a ``counters`` row without changing it.

        Transactions that lock the same counter run one after another from this
        point on, and (in PostgreSQL's READ COMMITTED) each statement after it
        sees everything the previous holder committed.
        """
        self.execute("UPDATE counters SET value = value WHERE name = ?", (name,))

    def next_counter_value(self, name, count=1):
        """Advance a row of the ``counters`` table and return its new value.

        The update takes a row lock that is held until commit, so transactions
        advancing the same counter commit in the order of the values they got
        (this is what makes stream positions become visible in order).

        :param count: how far to advance; the values ``new - count + 1 .. new``
            belong to the caller.
        """
        if _SUPPORTS_RETURNING.get(self.engine.name, False):
            return self.select_value(
                "UPDATE counters SET value = value + ? WHERE name = ? RETURNING value", (count, name)
            )
        self.execute("UPDATE counters SET value = value + ? WHERE name = ?", (count, name))
        return self.select_value("SELECT value FROM counters WHERE name = ?", (name,))


class Database:
    """A connection pool plus the engine that knows its dialect.

    :param engine: an :class:`~mxref.storage.engines.base.IDatabaseEngine`.
    :param pool: a started ``adbapi.ConnectionPool`` made by the engine.
    """

    log = Logger()

    def __init__(self, engine, pool):
        self.engine = engine
        self._pool = pool
        self._closed = False

    def run_interaction(self, description, func, *args, **kwargs):
        """Run ``func(txn, *args, **kwargs)`` in one database transaction, in a pool thread.

        The transaction commits if ``func`` returns and rolls back if it
        raises; it is retried a few times on transient errors (so ``func`` must
        have no side effects outside the database). ``func`` must not touch the
        reactor.

        :param description: a short name for logs.
        :returns: Deferred firing with ``func``'s result.
        """
        return self._pool.runWithConnection(self._run, description, func, args, kwargs)

    def run_blocking(self, connection, description, func, *args, **kwargs):
        """Run ``func(txn, *args, **kwargs)`` in one transaction on ``connection``, in the
        calling thread, and commit. For start-up work before the reactor runs (the schema).

        :returns: ``func``'s result (not a Deferred).
        """
        result = self._run(connection, description, func, args, kwargs)
        connection.commit()
        return result

    def _run(self, connection, description, func, args, kwargs):
        attempt = 1
        while True:
            self.engine.begin(connection)
            cursor = connection.cursor()
            try:
                return func(Transaction(self.engine, cursor, description), *args, **kwargs)
            except Exception as error:
                if attempt >= _MAX_ATTEMPTS or not self.engine.is_transient_error(error):
                    raise
                self.log.info(
                    "retrying transaction {description} after {error}",
                    description=description,
                    error=error,
                )
                connection.rollback()
                attempt += 1
            finally:
                cursor.close()

    def execute(self, description, sql, *args):
        """Run one query in its own transaction.

        :returns: Deferred firing with the list of result rows.
        """
        return self.run_interaction(description, lambda txn: txn.select(sql, args))

    def close(self):
        """Close all connections and stop the pool's threads (a second call does nothing)."""
        if not self._closed:
            self._closed = True
            self._pool.close()


def split_statements(sql_text):
    """Split a schema file into statements at ``;``, dropping ``--`` comments.

    Semicolons and ``--`` inside single-quoted string literals are kept.
    """
    statements, current = [], []
    in_string = False
    i = 0
    while i < len(sql_text):
        char = sql_text[i]
        if in_string:
            current.append(char)
            if char == "'":
                in_string = False
        elif char == "'":
            in_string = True
            current.append(char)
        elif sql_text.startswith("--", i):
            end = sql_text.find("\n", i)
            i = len(sql_text) if end < 0 else end
            continue
        elif char == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    statements.append("".join(current))
    return [statement.strip() for statement in statements if statement.strip()]


def schema_files(engine, schema_dir=SCHEMA_DIR):
    """The schema files for an engine, in version order.

    ``NNN_name.sql`` is portable; ``NNN_name.<engine.schema_suffix>.sql``
    replaces it for one engine. Files for other engines are ignored.

    :returns: a list of ``(version, path)``.
    """
    by_version = {}
    for filename in sorted(os.listdir(schema_dir)):
        match = re.fullmatch(r"(\d+)_[A-Za-z0-9_]+(?:\.([a-z0-9]+))?\.sql", filename)
        if not match:
            continue
        version, suffix = int(match.group(1)), match.group(2)
        if suffix is not None and suffix != engine.schema_suffix:
            continue
        path = os.path.join(schema_dir, filename)
        if version in by_version and suffix is None:
            if by_version[version][0] is None:
                raise ValueError(f"two schema files for version {version} in {schema_dir}")
            continue
        by_version[version] = (suffix, path)
    return [(version, by_version[version][1]) for version in sorted(by_version)]


def apply_schema_txn(txn, files, now_ms):
    """Apply the schema files not yet recorded in ``schema_version``, inside ``txn``.

    :param files: ``(version, path)`` pairs from :func:`schema_files`.
    :returns: the versions applied now.
    """
    txn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER NOT NULL PRIMARY KEY,"
        " filename TEXT NOT NULL,"
        " applied_ts BIGINT NOT NULL)"
    )
    applied = {row[0] for row in txn.select("SELECT version FROM schema_version")}
    newly_applied = []
    for version, path in files:
        if version in applied:
            continue
        with open(path, encoding="utf-8") as schema_file:
            statements = split_statements(schema_file.read())
        for statement in statements:
            txn.execute(statement)
        txn.execute(
            "INSERT INTO schema_version (version, filename, applied_ts) VALUES (?, ?, ?)",
            (version, os.path.basename(path), now_ms),
        )
        newly_applied.append(version)
    return newly_applied


def prepare_database(database, reactor, schema_dir=SCHEMA_DIR):
    """Apply, in one transaction, every schema file not yet recorded in ``schema_version``.

    :returns: Deferred firing with the list of versions applied now.
    """
    files = schema_files(database.engine, schema_dir)
    now_ms = int(reactor.seconds() * 1000)
    return database.run_interaction("prepare_database", apply_schema_txn, files, now_ms)


def make_engine(database_config):
    """The engine for a ``database`` config section (not a Deferred).

    :raises ValueError: for an unknown engine name.
    """
    name = database_config.get("name", "sqlite3")
    try:
        engine_class = _ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown database engine {name!r}; use 'sqlite3' or 'psycopg2'")
    return engine_class(dict(database_config.get("args") or {}))


@defer.inlineCallbacks
def make_database(database_config, reactor, schema_dir=SCHEMA_DIR):
    """Open the database described by a config section and bring its schema up to date.

    :param database_config: ``{"name": "sqlite3"|"psycopg2", "args": {...}}``.
    :param reactor: the reactor the pool's threads report back to.
    :param schema_dir: where the numbered schema files are (tests override it).
    :returns: Deferred firing with a ready :class:`Database`.
    """
    engine = make_engine(database_config)
    pool = engine.make_pool(reactor)
    pool.start()
    database = Database(engine, pool)
    try:
        yield prepare_database(database, reactor, schema_dir)
    except BaseException:
        database.close()
        raise
    return database
