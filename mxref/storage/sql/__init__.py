"""The SQL implementation of the storage interfaces: one class per interface,
each taking a :class:`~mxref.storage.database.Database`, composed by
:func:`mxref.storage.sql.store.make_store`. The SQL is portable; dialect
differences live in :mod:`mxref.storage.engines`.
"""
