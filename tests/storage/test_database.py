"""Tests for the database layer: engine selection, placeholders, transactions,
schema versioning and durability across ``kill -9``, on SQLite and PostgreSQL."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mxref.storage.database import (
    SCHEMA_DIR,
    make_database,
    make_engine,
    schema_files,
)
from mxref.storage.engines.base import IDatabaseEngine
from mxref.storage.engines.postgres import PostgresEngine
from mxref.storage.engines.sqlite import SqliteEngine
from mxref.storage.sql.store import make_store
from tests.storage.harness import PostgresBackendMixin, SqliteBackendMixin

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class EngineSelectionTests(unittest.TestCase):
    """The database config picks and configures an engine."""

    def test_sqlite_is_default(self):
        """A config without a name uses SQLite."""
        engine = make_engine({"args": {"database": "x.db"}})
        self.assertIsInstance(engine, SqliteEngine)
        self.assertEqual(engine.database, "x.db")
        self.assertTrue(verifyObject(IDatabaseEngine, engine))

    def test_postgres_args(self):
        """psycopg2 args are split into connection and pool settings; 'database' means 'dbname'."""
        engine = make_engine({"name": "psycopg2", "args": {
            "user": "u", "password": "p", "database": "d", "host": "h", "port": 5433, "cp_min": 2, "cp_max": 7,
        }})
        self.assertIsInstance(engine, PostgresEngine)
        self.assertTrue(verifyObject(IDatabaseEngine, engine))
        self.assertEqual(engine.connect_args, {"user": "u", "password": "p", "dbname": "d", "host": "h", "port": 5433})
        self.assertEqual(engine.pool_args, {"cp_min": 2, "cp_max": 7})

    def test_unknown_engine(self):
        """An unknown engine name is a clear configuration error."""
        self.assertRaises(ValueError, make_engine, {"name": "mysql"})

    def test_placeholders(self):
        """SQL written with ? runs on psycopg2 as %s, with literal % escaped; SQLite keeps it."""
        postgres = PostgresEngine({})
        self.assertEqual(postgres.convert_placeholders("a = ? AND b LIKE '5%' AND c = ?"),
                         "a = %s AND b LIKE '5%%' AND c = %s")
        self.assertEqual(SqliteEngine({}).convert_placeholders("a = ?"), "a = ?")


class SchemaFileTests(unittest.TestCase):
    """Schema files are picked per engine and ordered by version."""

    def make_dir(self, *names):
        path = self.mktemp()
        os.makedirs(path)
        for name in names:
            with open(os.path.join(path, name), "w") as f:
                f.write("CREATE TABLE t (x INTEGER);")
        return path

    def test_engine_variants(self):
        """An engine-specific file replaces the portable one; other engines' files are ignored."""
        path = self.make_dir("002_b.sql", "001_a.sql", "002_b.sqlite.sql", "003_c.postgres.sql", "notes.txt")
        sqlite_files = [os.path.basename(p) for _, p in schema_files(SqliteEngine({}), path)]
        self.assertEqual(sqlite_files, ["001_a.sql", "002_b.sqlite.sql"])
        postgres_files = [os.path.basename(p) for _, p in schema_files(PostgresEngine({}), path)]
        self.assertEqual(postgres_files, ["001_a.sql", "002_b.sql", "003_c.postgres.sql"])

    def test_duplicate_versions_refused(self):
        """Two portable files with one version number are an error."""
        path = self.make_dir("001_a.sql", "001_b.sql")
        self.assertRaises(ValueError, schema_files, SqliteEngine({}), path)

    def test_shipped_schema_starts_at_one(self):
        """The shipped schema directory starts with 001 and has no gaps."""
        versions = [v for v, _ in schema_files(SqliteEngine({}))]
        self.assertEqual(versions, list(range(1, len(versions) + 1)))


class DatabaseBehaviourMixin:
    """Transactions, schema versioning and durability; needs a backend mixin."""

    def copy_schema(self):
        """A copy of the shipped schema directory that a test may add files to."""
        path = os.path.abspath(self.mktemp())
        shutil.copytree(SCHEMA_DIR, path)
        return path

    @defer.inlineCallbacks
    def open_database(self, config, schema_dir=SCHEMA_DIR):
        database = yield make_database(config, reactor, schema_dir)
        self.addCleanup(database.close)
        return database

    @defer.inlineCallbacks
    def test_schema_versions_recorded_once(self):
        """A new database records every schema version; reopening applies nothing again."""
        rows = yield self.database.execute("versions", "SELECT version FROM schema_version ORDER BY version")
        self.assertEqual([r[0] for r in rows], [v for v, _ in schema_files(self.database.engine)])
        self.database.close()
        reopened = yield self.open_database(self.database_config)
        rows = yield reopened.execute("versions", "SELECT COUNT(*) FROM schema_version")
        self.assertEqual(rows[0][0], len(schema_files(reopened.engine)))
        counters = yield reopened.execute("counters", "SELECT COUNT(*) FROM counters")
        self.assertEqual(counters[0][0], 6)

    @defer.inlineCallbacks
    def test_new_schema_file_applied(self):
        """A newly added numbered file is applied on the next start and recorded."""
        self.database.close()
        schema_dir = self.copy_schema()
        with open(os.path.join(schema_dir, "900_extra.sql"), "w") as f:
            f.write("-- a test migration\nCREATE TABLE extras (x TEXT NOT NULL);\n"
                    "INSERT INTO extras (x) VALUES ('a;b');\n")
        reopened = yield self.open_database(self.database_config, schema_dir)
        rows = yield reopened.execute("extras", "SELECT x FROM extras")
        self.assertEqual(rows, [("a;b",)])
        versions = yield reopened.execute("versions", "SELECT version, filename FROM schema_version WHERE version = 900")
        self.assertEqual(versions, [(900, "900_extra.sql")])

    @defer.inlineCallbacks
    def test_failed_schema_file_applies_nothing(self):
        """A schema file that fails part-way leaves no tables and no version behind."""
        self.database.close()
        schema_dir = self.copy_schema()
        with open(os.path.join(schema_dir, "900_broken.sql"), "w") as f:
            f.write("CREATE TABLE half_done (x TEXT);\nTHIS IS NOT SQL;\n")
        yield self.assertFailure(make_database(self.database_config, reactor, schema_dir), Exception)
        reopened = yield self.open_database(self.database_config)
        versions = yield reopened.execute("versions", "SELECT COUNT(*) FROM schema_version WHERE version = 900")
        self.assertEqual(versions[0][0], 0)
        d = reopened.execute("half_done", "SELECT x FROM half_done")
        yield self.assertFailure(d, Exception)

    @defer.inlineCallbacks
    def test_failed_interaction_rolls_back(self):
        """An interaction that raises leaves the database unchanged."""

        def write_then_fail(txn):
            txn.execute("INSERT INTO users (user_id, is_admin, is_guest, created_ts, deactivated)"
                        " VALUES ('@x:y', 0, 0, 0, 0)")
            raise KeyError("boom")

        yield self.assertFailure(self.database.run_interaction("fail", write_then_fail), KeyError)
        rows = yield self.database.execute("users", "SELECT COUNT(*) FROM users")
        self.assertEqual(rows[0][0], 0)

    @defer.inlineCallbacks
    def test_transient_errors_are_retried(self):
        """A transaction failing with a transient error is rolled back and run again."""
        attempts = []
        transient = self.transient_error()

        def flaky(txn):
            txn.execute("INSERT INTO users (user_id, is_admin, is_guest, created_ts, deactivated)"
                        " VALUES (?, 0, 0, 0, 0)", (f"@try{len(attempts)}:y",))
            attempts.append(1)
            if len(attempts) == 1:
                raise transient
            return "ok"

        self.assertEqual((yield self.database.run_interaction("flaky", flaky)), "ok")
        rows = yield self.database.execute("users", "SELECT user_id FROM users")
        self.assertEqual(rows, [("@try1:y",)])

    @defer.inlineCallbacks
    def test_acknowledged_events_survive_kill_9(self):
        """Every event whose persist was acknowledged is there after the writer is SIGKILLed."""
        self.database.close()
        acked = yield threads.deferToThread(self.run_and_kill_writer, 25)
        reopened = yield self.open_database(self.database_config)
        store = make_store(reopened)
        have = yield store.events.have_events([event_id for event_id, _ in acked])
        self.assertEqual(have, {event_id for event_id, _ in acked})
        for event_id, ordering in acked:
            event = yield store.events.get_event(event_id)
            self.assertEqual(event.stream_ordering, ordering)
        self.assertGreaterEqual((yield store.events.get_max_stream_ordering()), acked[-1][1])

    def run_and_kill_writer(self, count):
        """Start the writer process, SIGKILL it after ``count`` acknowledgements (blocking)."""
        env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.storage.durability_writer", json.dumps(self.database_config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_ROOT, env=env, text=True,
        )
        acked = []
        try:
            for line in process.stdout:
                kind, event_id, ordering = line.split()
                acked.append((event_id, int(ordering)))
                if len(acked) >= count:
                    break
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
            stderr = process.stderr.read()
            process.stdout.close()
            process.stderr.close()
        if len(acked) < count:
            raise AssertionError(f"writer stopped early: {stderr}")
        return acked


class SqliteDatabaseTests(DatabaseBehaviourMixin, SqliteBackendMixin, unittest.TestCase):
    """Database behaviour on SQLite."""

    def transient_error(self):
        return sqlite3.OperationalError("database is locked")

    @defer.inlineCallbacks
    def test_durable_settings(self):
        """A file database runs in WAL mode with synchronous=FULL."""
        rows = yield self.database.run_interaction(
            "pragmas",
            lambda txn: (txn.select_value("PRAGMA journal_mode"), txn.select_value("PRAGMA synchronous")),
        )
        self.assertEqual(rows, ("wal", 2))

    @defer.inlineCallbacks
    def test_in_memory_database(self):
        """':memory:' works and keeps its data for the life of the Database."""
        database = yield self.open_database({"name": "sqlite3", "args": {"database": ":memory:"}})
        store = make_store(database)
        yield store.accounts.create_user("@m:example.org", None)
        self.assertIsNotNone((yield store.accounts.get_user("@m:example.org")))


class PostgresDatabaseTests(DatabaseBehaviourMixin, PostgresBackendMixin, unittest.TestCase):
    """Database behaviour on PostgreSQL."""

    def transient_error(self):
        import psycopg2

        error = psycopg2.extensions.TransactionRollbackError("deadlock detected")
        self.patch(PostgresEngine, "is_transient_error", lambda engine, e: e is error)
        return error

    @defer.inlineCallbacks
    def test_unreachable_server_fails(self):
        """A PostgreSQL config pointing at a closed port fails to open, loudly."""
        import psycopg2

        config = {"name": "psycopg2", "args": dict(self.database_config["args"], port=1, host="127.0.0.1")}
        yield self.assertFailure(make_database(config, reactor), psycopg2.OperationalError)
