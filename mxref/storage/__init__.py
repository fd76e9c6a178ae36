"""Storage: the database behind mxref, reached only through the interfaces in
:mod:`mxref.storage.interfaces`.

Storage is dumb and fast. It writes what the services computed (auth results,
state groups, forward extremities, current-state deltas) and reads it back; it
never decides anything Matrix-specific. :func:`mxref.storage.database.make_database`
opens SQLite or PostgreSQL from a Synapse-shaped ``database`` config section and
:func:`mxref.storage.sql.store.make_store` composes the SQL implementations.
"""
