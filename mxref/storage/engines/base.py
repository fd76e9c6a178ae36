"""The contract a database engine fulfils, and the helpers engines share.

To add a backend, implement :class:`IDatabaseEngine` in a new module of this
package, register its config ``name`` in :mod:`mxref.storage.database`, and
run the conformance suites in ``tests/storage/`` against it.
"""

import functools

from zope.interface import Attribute, Interface


class IDatabaseEngine(Interface):
    """One SQL dialect and driver."""

    name = Attribute("The config name, as in Synapse: ``'sqlite3'`` or ``'psycopg2'``.")
    schema_suffix = Attribute(
        "Suffix of engine-specific schema files: ``NNN_name.<suffix>.sql`` "
        "replaces ``NNN_name.sql`` for this engine."
    )

    def make_pool(reactor):
        """Build (but do not start) a ``twisted.enterprise.adbapi.ConnectionPool``.

        :returns: the pool (not a Deferred).
        """

    def convert_placeholders(sql):
        """Rewrite SQL written with ``?`` placeholders in the driver's paramstyle.

        SQL text passed here must not contain ``?`` inside string literals.

        :returns: the SQL string.
        """

    def begin(connection):
        """Start a transaction on a raw connection (in a pool thread)."""

    def execute_many(cursor, sql, rows):
        """Run converted ``sql`` once per parameter tuple in ``rows``, efficiently."""

    def is_transient_error(error):
        """Whether a failed transaction may succeed if simply run again
        (lock contention, serialisation failure, deadlock).

        :returns: bool.
        """


@functools.lru_cache(maxsize=4096)
def qmark_to_format(sql: str) -> str:
    """Rewrite ``?`` placeholders as ``%s`` (and ``%`` as ``%%``), for format-style drivers."""
    return sql.replace("%", "%%").replace("?", "%s")
