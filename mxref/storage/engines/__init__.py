"""Database engines: everything that differs between SQLite and PostgreSQL.

An engine (see :class:`mxref.storage.engines.base.IDatabaseEngine`) opens the
connection pool, sets up each connection, starts transactions, converts the
``?`` placeholders mxref's SQL is written with, and says which errors are worth
retrying. The SQL in :mod:`mxref.storage.sql` and the schema files are
portable; nothing outside this package tests which engine is in use.
"""
