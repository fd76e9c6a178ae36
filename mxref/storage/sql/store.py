"""Composition of the SQL stores over one database.

The composition root calls :func:`make_store` and hands each service only the
store interfaces it needs (``store.events``, ``store.rooms``, ...); no service
gets the whole :class:`SqlStore`.
"""

import attr

from mxref.storage.sql.accounts import SqlAccountStore
from mxref.storage.sql.client_data import SqlClientDataStore
from mxref.storage.sql.events import SqlEventStore
from mxref.storage.sql.federation import SqlFederationStore
from mxref.storage.sql.rooms import SqlRoomStore
from mxref.storage.sql.state import SqlStateStore


@attr.s(frozen=True, slots=True, auto_attribs=True)
class SqlStore:
    """The SQL stores sharing one :class:`~mxref.storage.database.Database`.

    :ivar events: :class:`~mxref.storage.interfaces.IEventStore`
    :ivar state: :class:`~mxref.storage.interfaces.IStateStore`
    :ivar rooms: :class:`~mxref.storage.interfaces.IRoomStore`
    :ivar accounts: :class:`~mxref.storage.interfaces.IAccountStore`
    :ivar client_data: :class:`~mxref.storage.interfaces.IClientDataStore`
    :ivar federation: :class:`~mxref.storage.interfaces.IFederationStore`
    """

    database: object
    events: SqlEventStore
    state: SqlStateStore
    rooms: SqlRoomStore
    accounts: SqlAccountStore
    client_data: SqlClientDataStore
    federation: SqlFederationStore

    def close(self):
        """Close the database (its pool threads stop)."""
        self.database.close()


def make_store(database, snapshot_interval=100):
    """Build every SQL store over ``database`` (not a Deferred).

    :param snapshot_interval: see :class:`~mxref.storage.sql.state.SqlStateStore`.
    """
    state = SqlStateStore(database, snapshot_interval=snapshot_interval)
    return SqlStore(
        database=database,
        events=SqlEventStore(database, state),
        state=state,
        rooms=SqlRoomStore(database),
        accounts=SqlAccountStore(database),
        client_data=SqlClientDataStore(database),
        federation=SqlFederationStore(database),
    )
