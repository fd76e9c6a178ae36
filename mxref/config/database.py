"""The ``database`` section: embedded SQLite (the default) or PostgreSQL through psycopg2.

Same shape as Synapse::

    database:
      name: sqlite3
      args:
        database: /var/lib/mxref/homeserver.db

    database:
      name: psycopg2
      args:
        user: mxref
        password: secret
        dbname: mxref
        host: localhost
        port: 5432
        cp_min: 5
        cp_max: 10

For psycopg2, every ``args`` key other than ``cp_min``/``cp_max`` is passed to
``psycopg2.connect`` unchanged, so any libpq keyword (``sslmode``, ...) works.
"""

import types

import attrs

from mxref.config.reader import ConfigError, ConfigReader

ENGINES = ("sqlite3", "psycopg2")


@attrs.frozen
class DatabaseConfig:
    """Where the data lives.

    :ivar name: the engine: ``"sqlite3"`` or ``"psycopg2"``.
    :ivar connect_args: keyword arguments for the driver's ``connect`` (read-only mapping).
        For SQLite this holds ``database``, an absolute path or ``":memory:"``.
    :ivar cp_min: the fewest connections the pool keeps open.
    :ivar cp_max: the most connections the pool opens.
    :ivar allow_unsafe_locale: accept a PostgreSQL database whose collation is not ``C``.
    """

    name: str
    connect_args: types.MappingProxyType
    cp_min: int = 5
    cp_max: int = 10
    allow_unsafe_locale: bool = False

    @property
    def sqlite_path(self) -> str | None:
        """The SQLite file (or ``":memory:"``) for ``sqlite3``; ``None`` for PostgreSQL."""
        return self.connect_args["database"] if self.name == "sqlite3" else None

    @classmethod
    def read(cls, reader: ConfigReader) -> "DatabaseConfig":
        """Read the top-level ``database`` mapping (absent means SQLite in the config directory)."""
        section = reader.section("database")
        name = section.string("name", "sqlite3")
        if name not in ENGINES:
            raise ConfigError(
                section.key_path("name"), f"must be one of {', '.join(ENGINES)}, not {name!r}"
            )
        args = section.section("args")
        cp_min = args.integer("cp_min", 5 if name == "psycopg2" else 1, minimum=1)
        cp_max = args.integer("cp_max", 10 if name == "psycopg2" else 1, minimum=1)
        if cp_min > cp_max:
            raise ConfigError(args.key_path("cp_min"), f"must not exceed cp_max ({cp_max})")

        if name == "sqlite3":
            database = args.string("database", "homeserver.db")
            if database != ":memory:":
                database = args.resolve_path(database)
            connect_args = {"database": database}
            args.warn_about_unread()
        else:
            connect_args = {k: v for k, v in args.data.items() if k not in ("cp_min", "cp_max")}
            for key in ("user", "password", "dbname", "database", "host"):
                args.string(key, None)

        config = cls(
            name=name,
            connect_args=types.MappingProxyType(connect_args),
            cp_min=cp_min,
            cp_max=cp_max,
            allow_unsafe_locale=section.boolean("allow_unsafe_locale", False),
        )
        section.warn_about_unread(ignored_synapse_keys=("txn_limit",))
        return config
