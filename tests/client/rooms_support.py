"""A fixture for the room endpoint tests: the account harness of :mod:`tests.client.support`
plus the room services and the room, directory, profile and receipt resources, over HTTP on
a real SQLite store."""

import json
from urllib.parse import quote, urlencode

from twisted.trial import unittest

from mxref.client.directory.resource import DirectoryResource
from mxref.client.directory.service import RoomDirectory
from mxref.client.profile.resource import ProfileResource
from mxref.client.profile.service import ProfileService
from mxref.client.receipts.resource import ReceiptResource
from mxref.client.receipts.service import ReadReceipts, TypingRequests
from mxref.client.receipts.typing import TypingTracker
from mxref.client.rooms.resource import RoomReadingResource, RoomResource
from mxref.client.rooms.service import RoomActions, RoomReader
from mxref.client.visibility import EventVisibility
from mxref.events.signing import generate_signing_key
from mxref.notifier import Notifier
from mxref.rooms.creator import EventCreator
from mxref.rooms.interfaces import NoRemoteRooms
from mxref.rooms.membership import MembershipUpdater
from mxref.rooms.persister import EventPersister
from mxref.rooms.room_creation import RoomCreator
from mxref.rooms.state import RoomStateReader
from tests.client.support import ClientApiHarness, deferred_test
from tests.schema import validate_response

V3 = "/_matrix/client/v3"


def path_part(value: str) -> str:
    """Percent-encode one path segment (room IDs, aliases, event IDs, state keys)."""
    return quote(value, safe="")


class RoomApiTestCase(unittest.TestCase):
    """Gives each test ``self.harness`` with the room services (``self.creator``,
    ``self.membership``, ``self.room_creator``, ``self.notifier``, ``self.actions``,
    ``self.reader``) and users ``self.alice``, ``self.bob`` and ``self.carol``."""

    message_limiter = None

    @deferred_test
    async def setUp(self):
        self.harness = harness = await ClientApiHarness.create(self)
        store = harness.store
        self.store = store
        self.server_name = harness.server_name
        self.notifier = Notifier(harness.clock)
        self.state_reader = RoomStateReader(store.events, store.state)
        self.persister = EventPersister(store.events, self.state_reader, self.notifier)
        self.creator = EventCreator(
            store.events,
            store.rooms,
            self.state_reader,
            self.persister,
            harness.server_name,
            generate_signing_key("a1"),
            harness.clock,
        )
        self.membership = MembershipUpdater(
            store.events,
            store.rooms,
            store.accounts,
            self.creator,
            NoRemoteRooms(),
            harness.server_name,
        )
        self.room_creator = RoomCreator(
            self.creator, self.membership, store.rooms, store.accounts, harness.server_name
        )
        self.visibility = EventVisibility(store.events, store.state, store.rooms)
        self.actions = RoomActions(
            self.creator,
            self.room_creator,
            self.membership,
            store.events,
            store.rooms,
            message_limiter=self.make_message_limiter(),
        )
        self.reader = RoomReader(
            store.events, store.rooms, store.state, self.visibility, harness.clock
        )
        harness.add_routes(
            RoomResource(self.actions, harness.authenticator),
            RoomReadingResource(self.reader, harness.authenticator),
        )
        self.add_more_routes()
        self.alice = await harness.register_user("alice")
        self.bob = await harness.register_user("bob")
        self.carol = await harness.register_user("carol")

    def make_message_limiter(self):
        """The ``rc_message`` limiter for :class:`RoomActions` (none by default)."""
        return None

    def add_more_routes(self):
        """Subclasses register further resources on ``self.harness`` here."""

    async def call(self, method, path, body=None, user=None, query=None, token=None):
        """One request to ``/_matrix/client/v3<path>`` as ``user``; returns the raw response."""
        if query:
            path = path + "?" + urlencode(query, doseq=True)
        if token is None and user is not None:
            token = user.access_token
        return await self.harness.request(method, V3 + path, body=body, token=token)

    async def ok(self, method, path, body=None, user=None, query=None, spec=None):
        """Make a request that must succeed (200) and return its JSON body.

        :param spec: ``(api_file, path_template)`` to validate the body against.
        """
        response = await self.call(method, path, body, user, query)
        self.assertEqual(response.code, 200, response.body)
        body = response.json()
        if spec is not None:
            validate_response(f"client-server/{spec[0]}", spec[1], method.lower(), 200, body)
        return body

    async def fails(
        self, status, errcode, method, path, body=None, user=None, query=None, token=None
    ):
        """Make a request that must fail with ``status`` and ``errcode``; returns the body."""
        response = await self.call(method, path, body, user, query, token)
        self.assertEqual(
            (response.code, response.json().get("errcode")), (status, errcode), response.body
        )
        return response.json()

    async def create_room(self, user, **body):
        """Create a room through the API; returns its ID.

        The clock moves on by 10 ms afterwards: two identical room version 12 create events
        sent in the same millisecond would hash to the same room ID.
        """
        created = await self.ok("POST", "/createRoom", body, user)
        self.harness.clock.advance(0.01)
        return created["room_id"]

    async def send_text(self, user, room_id, text, txn_id=None):
        """Send an ``m.text`` message; returns the event ID."""
        self._txn = getattr(self, "_txn", 0) + 1
        txn_id = txn_id or f"txn{self._txn}"
        sent = await self.ok(
            "PUT",
            f"/rooms/{path_part(room_id)}/send/m.room.message/{txn_id}",
            {"msgtype": "m.text", "body": text},
            user,
        )
        return sent["event_id"]

    async def join(self, user, room_id):
        """Join ``user`` to a room through the API."""
        await self.ok("POST", f"/rooms/{path_part(room_id)}/join", {}, user)

    async def invite(self, user, room_id, target):
        """Invite ``target`` (a RegisteredUser) through the API."""
        await self.ok(
            "POST", f"/rooms/{path_part(room_id)}/invite", {"user_id": target.user_id}, user
        )


def filter_query(**fields) -> str:
    """A ``filter=`` query value."""
    return json.dumps(fields)


class FullRoomApiTestCase(RoomApiTestCase):
    """Every endpoint of this package: rooms, directory, profile, receipts and typing."""

    def add_more_routes(self):
        store = self.store
        self.harness.add_routes(
            DirectoryResource(
                RoomDirectory(store.events, store.rooms, self.membership, self.server_name),
                self.harness.authenticator,
                self.server_name,
            ),
            ProfileResource(
                ProfileService(
                    store.accounts, store.rooms, store.events, self.creator, self.server_name
                ),
                self.harness.authenticator,
            ),
            ReceiptResource(
                ReadReceipts(
                    store.client_data, store.events, store.rooms, self.notifier, self.harness.clock
                ),
                TypingRequests(TypingTracker(self.harness.clock, self.notifier), store.rooms),
                self.harness.authenticator,
            ),
        )
