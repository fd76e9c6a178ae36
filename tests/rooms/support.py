"""A fixture for room service tests: every room service over a real SQLite store."""

import os

from twisted.internet import defer, reactor

from mxref.events.signing import generate_signing_key
from mxref.notifier import Notifier
from mxref.rooms.creator import EventCreator
from mxref.rooms.interfaces import NoRemoteRooms
from mxref.rooms.membership import MembershipUpdater
from mxref.rooms.persister import EventPersister
from mxref.rooms.room_creation import RoomCreator
from mxref.rooms.state import RoomStateReader
from mxref.storage.database import make_database
from mxref.storage.sql.store import make_store


class RoomServicesMixin:
    """Gives each test ``self.store``, ``self.notifier``, ``self.creator``,
    ``self.membership`` and ``self.room_creator`` for server ``test.example``."""

    server_name = "test.example"

    @defer.inlineCallbacks
    def setUp(self):
        path = os.path.abspath(self.mktemp() + ".db")
        database = yield make_database({"name": "sqlite3", "args": {"database": path}}, reactor)
        self.addCleanup(database.close)
        self.store = make_store(database)
        self.notifier = Notifier(reactor)
        self.state_reader = RoomStateReader(self.store.events, self.store.state)
        self.persister = EventPersister(self.store.events, self.state_reader, self.notifier)
        self.signing_key = generate_signing_key("a1")
        self.creator = EventCreator(
            self.store.events, self.store.rooms, self.state_reader, self.persister,
            self.server_name, self.signing_key, reactor,
        )
        self.membership = MembershipUpdater(
            self.store.events, self.store.rooms, self.store.accounts, self.creator, NoRemoteRooms(), self.server_name
        )
        self.room_creator = RoomCreator(
            self.creator, self.membership, self.store.rooms, self.store.accounts, self.server_name
        )

    def user(self, localpart):
        """A user ID on this server."""
        return f"@{localpart}:{self.server_name}"

    @defer.inlineCallbacks
    def current_state_content(self, room_id, event_type, state_key=""):
        """The content of a current state event, or None."""
        state = yield self.store.events.get_current_state(room_id, types=[(event_type, state_key)])
        event = state.get((event_type, state_key))
        return None if event is None else event.pdu["content"]
