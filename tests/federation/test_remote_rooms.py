"""Joining, inviting and leaving across servers with RemoteRooms: two in-process servers,
each with its own SQLite store and room services, talking through a client that calls the
other server's resident-side services with JSON round-trips."""

import json
import os

from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mxref.auth.tokens import Requester
from mxref.client.directory.service import RoomDirectory
from mxref.client.filters.service import FilterService
from mxref.client.sync.service import SyncService
from mxref.client.visibility import EventVisibility
from mxref.errors import MatrixError
from mxref.events.signing import generate_signing_key
from mxref.federation.acl import ServerAclChecker
from mxref.client.receipts.typing import TypingTracker
from mxref.federation.receiver.edus import EduRouter, TypingEduReceiver
from mxref.federation.receiver.membership import ResidentMembership
from mxref.federation.receiver.pipeline import PduReceiver
from mxref.federation.receiver.queries import FederationQueries
from mxref.federation.receiver.room_reads import FederationRoomReads
from mxref.federation.receiver.transactions import TransactionReceiver
from mxref.federation.remote_rooms import RemoteRooms, fill_membership_template
from mxref.federation.sender.sender import FederationSender
from mxref.federation.transport.client import RequestFailed
from mxref.notifier import Notifier
from mxref.rooms.creator import EventCreator
from mxref.rooms.interfaces import IRemoteRooms
from mxref.rooms.membership import MembershipUpdater
from mxref.rooms.persister import EventPersister
from mxref.rooms.room_creation import RoomCreator
from mxref.rooms.state import RoomStateReader
from mxref.storage.database import make_database
from mxref.storage.sql.store import make_store
from tests.federation.receiver_support import DictKeyring

HS1 = "one.example"
HS2 = "two.example"


def over_the_wire(value):
    """What the other side sees of a JSON value."""
    return json.loads(json.dumps(value))


class InProcessServer:
    """One server's room services, resident-side federation services and RemoteRooms."""

    @classmethod
    @defer.inlineCallbacks
    def build(cls, testcase, server_name, network, keyring):
        self = cls()
        self.server_name = server_name
        path = os.path.abspath(testcase.mktemp() + ".db")
        database = yield make_database({"name": "sqlite3", "args": {"database": path}}, reactor)
        testcase.addCleanup(database.close)
        self.store = store = make_store(database)
        self.signing_key = generate_signing_key("k1")
        keyring.add(server_name, self.signing_key)
        self.client = NetworkClient(server_name, network)
        self.notifier = Notifier(reactor)
        self.state_reader = RoomStateReader(store.events, store.state)
        self.persister = EventPersister(store.events, self.state_reader, self.notifier)
        self.creator = EventCreator(store.events, store.rooms, self.state_reader, self.persister, server_name,
                                    self.signing_key, reactor)
        acl = ServerAclChecker(store.events)
        self.receiver = PduReceiver(store.events, store.rooms, self.state_reader, self.persister, keyring,
                                    self.client, acl)
        self.remote_rooms = RemoteRooms(store.events, store.rooms, self.persister, self.receiver, self.client,
                                        keyring, self.notifier, server_name, self.signing_key, reactor)
        self.membership = MembershipUpdater(store.events, store.rooms, store.accounts, self.creator,
                                            self.remote_rooms, server_name)
        self.room_creator = RoomCreator(self.creator, self.membership, store.rooms, store.accounts, server_name)
        visibility = EventVisibility(store.events, store.state, store.rooms)
        reads = FederationRoomReads(store.events, store.state, store.rooms, self.state_reader, visibility, acl,
                                    server_name, reactor)
        self.typing = TypingTracker(task.Clock(), self.notifier)
        self.sender = FederationSender(store.events, store.rooms, store.federation, store.client_data, self.client,
                                       self.notifier, self.typing, reactor, server_name)
        self.resident = ResidentMembership(store.events, store.rooms, store.accounts, self.creator, self.receiver,
                                           reads, acl, self.notifier, server_name, self.signing_key, reactor,
                                           forward_event=self.sender.send_on_behalf_of)
        router = EduRouter()
        router.register("m.typing", TypingEduReceiver(self.typing, store.rooms, acl).on_edu)
        self.transactions = TransactionReceiver(store.federation, store.rooms, self.receiver, router, reactor,
                                                origin_seen=self.sender.wake_destination)
        directory = RoomDirectory(store.events, store.rooms, self.membership, server_name)
        self.queries = FederationQueries(store.rooms, store.accounts, directory.public_rooms, server_name, True)
        network[server_name] = self
        return self

    def user(self, localpart):
        return f"@{localpart}:{self.server_name}"

    @defer.inlineCallbacks
    def register(self, localpart):
        user_id = self.user(localpart)
        yield self.store.accounts.create_user(user_id, None)
        return user_id


class NetworkKeyring(DictKeyring):
    """A DictKeyring that servers add their keys to as they are built."""

    def __init__(self):
        super().__init__({})

    def add(self, server_name, signing_key):
        self.keys.update(DictKeyring({server_name: signing_key}).keys)


class NetworkClient:
    """A federation client of ``origin`` that calls the destination server's services
    directly; destinations in ``unreachable`` fail like a dead network, and ``tamper`` may
    rewrite an answer."""

    def __init__(self, origin, network):
        self.origin = origin
        self.network = network
        self.unreachable = set()
        self.tamper = {}
        self.calls = []

    def _call(self, name, destination, f, *args):
        self.calls.append((name, destination))
        if destination in self.unreachable or destination not in self.network:
            return defer.fail(RequestFailed(f"cannot reach {destination}"))
        d = defer.maybeDeferred(f, self.network[destination], *over_the_wire(list(args)))
        d.addCallback(over_the_wire)
        if name in self.tamper:
            d.addCallback(self.tamper[name])
        return d

    def make_join(self, destination, room_id, user_id, supported_versions):
        return self._call("make_join", destination, lambda s, *a: s.resident.make_membership_event(
            self.origin, a[0], a[1], "join", a[2]), room_id, user_id, list(supported_versions))

    def send_join(self, destination, room_id, event_id, event, omit_members=False):
        return self._call("send_join", destination, lambda s, *a: s.resident.send_join(self.origin, *a),
                          room_id, event_id, event)

    def make_leave(self, destination, room_id, user_id):
        return self._call("make_leave", destination, lambda s, *a: s.resident.make_membership_event(
            self.origin, a[0], a[1], "leave"), room_id, user_id)

    def send_leave(self, destination, room_id, event_id, event):
        return self._call("send_leave", destination, lambda s, *a: s.resident.send_leave(self.origin, *a),
                          room_id, event_id, event)

    def make_knock(self, destination, room_id, user_id, supported_versions):
        return self._call("make_knock", destination, lambda s, *a: s.resident.make_membership_event(
            self.origin, a[0], a[1], "knock", a[2]), room_id, user_id, list(supported_versions))

    def send_knock(self, destination, room_id, event_id, event):
        return self._call("send_knock", destination, lambda s, *a: s.resident.send_knock(self.origin, *a),
                          room_id, event_id, event)

    def send_invite(self, destination, room_id, event_id, event, room_version, invite_room_state=()):
        return self._call("send_invite", destination, lambda s, *a: s.resident.on_invite(self.origin, *a),
                          room_id, event_id, room_version, event, list(invite_room_state))

    def send_transaction(self, destination, txn_id, pdus, edus):
        body = {"origin": self.origin, "origin_server_ts": 0, "pdus": pdus, "edus": edus}

        def deliver(server, txn, body):
            d = server.transactions.on_transaction(self.origin, txn, body)
            d.addCallback(lambda result: result[1])
            return d

        return self._call("send_transaction", destination, deliver, txn_id, body)

    def query_directory(self, destination, alias):
        return self._call("query_directory", destination, lambda s, a: s.queries.query_directory(a), alias)

    def get_missing_events(self, destination, room_id, earliest_events, latest_events, limit, min_depth):
        return defer.succeed({"events": []})


class TwoServerFixture:
    room_version = "12"

    @defer.inlineCallbacks
    def setUp(self):
        self.network = {}
        self.keyring = NetworkKeyring()
        self.hs1 = yield InProcessServer.build(self, HS1, self.network, self.keyring)
        self.hs2 = yield InProcessServer.build(self, HS2, self.network, self.keyring)
        self.alice = yield self.hs1.register("alice")
        self.bob = yield self.hs2.register("bob")

    @defer.inlineCallbacks
    def bob_room(self, preset="public_chat", **kwargs):
        room_id = yield self.hs2.room_creator.create_room(
            self.bob, preset=preset, room_version=self.room_version, **kwargs
        )
        return room_id


class JoinTests(TwoServerFixture, unittest.TestCase):
    def test_provides_interface(self):
        """RemoteRooms provides IRemoteRooms."""
        self.assertTrue(verifyObject(IRemoteRooms, self.hs1.remote_rooms))

    @defer.inlineCallbacks
    def test_join_over_federation(self):
        """Alice joins bob's room on another server: both servers see her joined, her server
        holds the room's state, and she can then send a message into the room."""
        room_id = yield self.bob_room(name="Bob's room")
        joined = yield self.hs1.membership.join(self.alice, room_id, servers=[HS2])
        self.assertEqual(joined, room_id)

        version = yield self.hs1.store.rooms.get_room_version(room_id)
        self.assertEqual(version, self.room_version)
        for server in (self.hs1, self.hs2):
            members = yield server.store.rooms.get_members(room_id, membership="join")
            self.assertEqual(sorted(members), sorted([self.alice, self.bob]))
            hosts = yield server.store.rooms.get_joined_hosts(room_id)
            self.assertEqual(hosts, {HS1, HS2})
        ours = yield self.hs1.store.events.get_current_state_ids(room_id)
        theirs = yield self.hs2.store.events.get_current_state_ids(room_id)
        self.assertEqual(ours, theirs)
        self.assertIn(("m.room.name", ""), ours)
        rooms = yield self.hs1.store.rooms.get_rooms_for_user(self.alice)
        self.assertEqual([m.room_id for m in rooms], [room_id])

        event_id, _ = yield self.hs1.creator.send_event(room_id, self.alice, "m.room.message",
                                                       {"msgtype": "m.text", "body": "hello"})
        stored = yield self.hs1.store.events.get_event(event_id)
        self.assertEqual(list(stored.prev_event_ids), [ours[("m.room.member", self.alice)]])

    @defer.inlineCallbacks
    def test_joined_room_in_sync(self):
        """After the remote join, alice's /sync (woken by the join) lists the room as joined
        with its name in the state and her join in the timeline."""
        room_id = yield self.bob_room(name="Bob's room")
        visibility = EventVisibility(self.hs1.store.events, self.hs1.store.state, self.hs1.store.rooms)
        sync = SyncService(self.hs1.store.events, self.hs1.store.rooms, self.hs1.store.client_data, visibility,
                           self.hs1.creator, FilterService(self.hs1.store.client_data), self.hs1.notifier, reactor)
        requester = Requester(self.alice)
        first = yield sync.sync(requester)
        self.assertNotIn(room_id, first.get("rooms", {}).get("join", {}))
        waiting = sync.sync(requester, since=first["next_batch"], timeout_ms=30_000)
        join_id = yield self.hs1.remote_rooms.join_remote_room(room_id, self.alice, [HS2], {})
        response = yield waiting
        joined = response["rooms"]["join"][room_id]
        events = joined.get("state", {}).get("events", []) + joined["timeline"]["events"]
        self.assertIn("m.room.name", [e["type"] for e in events])
        self.assertIn(join_id, [e["event_id"] for e in joined["timeline"]["events"]])

    @defer.inlineCallbacks
    def test_join_carries_profile_content(self):
        """The membership content given (display name) is in the join event."""
        room_id = yield self.bob_room()
        event_id = yield self.hs1.remote_rooms.join_remote_room(
            room_id, self.alice, [HS2], {"membership": "join", "displayname": "Alice"}
        )
        stored = yield self.hs2.store.events.get_event(event_id)
        self.assertEqual(stored.pdu["content"], {"membership": "join", "displayname": "Alice"})
        self.assertIn(HS1, stored.pdu["signatures"])

    @defer.inlineCallbacks
    def test_unreachable_candidate_skipped(self):
        """An unreachable first candidate is skipped and the join goes through the next one."""
        room_id = yield self.bob_room()
        self.hs1.client.unreachable.add("dead.example")
        self.network["dead.example"] = self.hs2
        yield self.hs1.remote_rooms.join_remote_room(room_id, self.alice, ["dead.example", HS2], {})
        self.assertEqual([c for c in self.hs1.client.calls if c[0] == "make_join"],
                         [("make_join", "dead.example"), ("make_join", HS2)])
        members = yield self.hs1.store.rooms.get_members(room_id, membership="join")
        self.assertIn(self.alice, members)

    @defer.inlineCallbacks
    def test_refused_join_leaves_nothing(self):
        """Joining an invite-only room fails with 403 and the room stays unknown locally."""
        room_id = yield self.bob_room(preset="private_chat")
        error = yield self.assertFailure(
            self.hs1.membership.join(self.alice, room_id, servers=[HS2]), MatrixError
        )
        self.assertEqual((error.code, error.errcode), (403, "M_FORBIDDEN"))
        version = yield self.hs1.store.rooms.get_room_version(room_id)
        self.assertIsNone(version)

    @defer.inlineCallbacks
    def test_forged_state_refused(self):
        """A send_join answer whose join rules event has a bad signature is refused (502)
        and the room is not joined."""
        room_id = yield self.bob_room()

        def forge(response):
            for event in response["state"] + response["auth_chain"]:
                if event["type"] == "m.room.join_rules":
                    event["signatures"] = {HS2: {"ed25519:k1": "A" * 86}}
            return response

        self.hs1.client.tamper["send_join"] = forge
        error = yield self.assertFailure(
            self.hs1.remote_rooms.join_remote_room(room_id, self.alice, [HS2], {}), MatrixError
        )
        self.assertEqual(error.code, 502)
        version = yield self.hs1.store.rooms.get_room_version(room_id)
        self.assertIsNone(version)

    @defer.inlineCallbacks
    def test_restricted_join_countersigned(self):
        """Joining a restricted room through a room alice is in: the join kept is the one the
        resident counter-signed, naming bob as the authorising user."""
        space = yield self.bob_room()
        yield self.hs1.membership.join(self.alice, space, servers=[HS2])
        room_id = yield self.bob_room(preset="private_chat")
        yield self.hs2.creator.send_event(
            room_id, self.bob, "m.room.join_rules",
            {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]}, state_key="",
        )
        event_id = yield self.hs1.remote_rooms.join_remote_room(room_id, self.alice, [HS2], {})
        stored = yield self.hs1.store.events.get_event(event_id)
        self.assertEqual(stored.pdu["content"]["join_authorised_via_users_server"], self.bob)
        self.assertEqual(set(stored.pdu["signatures"]), {HS1, HS2})
        members = yield self.hs1.store.rooms.get_members(room_id, membership="join")
        self.assertIn(self.alice, members)

    @defer.inlineCallbacks
    def test_malformed_state_refused(self):
        """A send_join answer whose state holds something that is not an event is refused
        (502) rather than taken as a partial state."""
        room_id = yield self.bob_room()

        def garble(response):
            response["state"].append({"type": "m.room.topic"})
            return response

        self.hs1.client.tamper["send_join"] = garble
        error = yield self.assertFailure(
            self.hs1.remote_rooms.join_remote_room(room_id, self.alice, [HS2], {}), MatrixError
        )
        self.assertEqual(error.code, 502)
        version = yield self.hs1.store.rooms.get_room_version(room_id)
        self.assertIsNone(version)

    @defer.inlineCallbacks
    def test_wrong_template_refused(self):
        """A make_join template for another user is refused."""
        room_id = yield self.bob_room()

        def other_user(response):
            response["event"]["state_key"] = self.bob
            return response

        self.hs1.client.tamper["make_join"] = other_user
        error = yield self.assertFailure(
            self.hs1.remote_rooms.join_remote_room(room_id, self.alice, [HS2], {}), MatrixError
        )
        self.assertEqual(error.code, 502)
        self.assertNotIn(("send_join", HS2), self.hs1.client.calls)


class JoinV10Tests(JoinTests):
    room_version = "10"


class InviteAndLeaveTests(TwoServerFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def test_invite_remote_user_countersigned(self):
        """Bob invites alice of the other server: the invite stored on bob's server carries
        both servers' signatures and alice's server lists the invite."""
        room_id = yield self.bob_room()
        event_id = yield self.hs2.membership.invite(self.bob, room_id, self.alice)
        stored = yield self.hs2.store.events.get_event(event_id)
        self.assertEqual(set(stored.pdu["signatures"]), {HS1, HS2})
        invites = yield self.hs1.store.rooms.get_rooms_for_user(self.alice, memberships=("invite",))
        self.assertEqual([m.room_id for m in invites], [room_id])

    @defer.inlineCallbacks
    def test_altered_invite_refused(self):
        """An invitee server that changes the invite's content is refused with 502."""
        room_id = yield self.bob_room()

        def alter(response):
            response["event"]["content"]["membership"] = "join"
            return response

        self.hs2.client.tamper["send_invite"] = alter
        error = yield self.assertFailure(self.hs2.membership.invite(self.bob, room_id, self.alice), MatrixError)
        self.assertEqual(error.code, 502)
        members = yield self.hs2.store.rooms.get_members(room_id)
        self.assertNotIn(self.alice, members)

    @defer.inlineCallbacks
    def test_unsigned_invite_refused(self):
        """An invitee server that does not add its signature is refused with 502."""
        room_id = yield self.bob_room()

        def drop_signature(response):
            del response["event"]["signatures"][HS1]
            return response

        self.hs2.client.tamper["send_invite"] = drop_signature
        error = yield self.assertFailure(self.hs2.membership.invite(self.bob, room_id, self.alice), MatrixError)
        self.assertEqual(error.code, 502)

    @defer.inlineCallbacks
    def test_reject_invite(self):
        """Alice rejects bob's invite through make_leave/send_leave: bob's server sees her
        leave and her own server no longer lists the invite."""
        room_id = yield self.bob_room(preset="private_chat")
        yield self.hs2.membership.invite(self.bob, room_id, self.alice)
        event_id = yield self.hs1.membership.leave(self.alice, room_id)
        members = yield self.hs2.store.rooms.get_members(room_id)
        self.assertEqual(members[self.alice].membership, "leave")
        self.assertEqual(members[self.alice].event_id, event_id)
        invites = yield self.hs1.store.rooms.get_rooms_for_user(self.alice, memberships=("invite",))
        self.assertEqual(invites, [])

    @defer.inlineCallbacks
    def test_accept_invite_to_private_room(self):
        """Alice joins a private room she was invited to, through the inviting server."""
        room_id = yield self.bob_room(preset="private_chat")
        yield self.hs2.membership.invite(self.bob, room_id, self.alice)
        yield self.hs1.membership.join(self.alice, room_id)
        members = yield self.hs1.store.rooms.get_members(room_id, membership="join")
        self.assertEqual(sorted(members), sorted([self.alice, self.bob]))


class KnockTests(TwoServerFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def test_knock_on_remote_room(self):
        """Alice knocks on bob's knock-only room: bob's server records the knock, and alice's
        server keeps it with the room's stripped state for her /sync."""
        room_id = yield self.bob_room(preset="private_chat")
        yield self.hs2.creator.send_event(room_id, self.bob, "m.room.join_rules", {"join_rule": "knock"},
                                          state_key="")
        event_id = yield self.hs1.remote_rooms.knock_remote_room(room_id, self.alice, [HS2], {"reason": "hi"})
        members = yield self.hs2.store.rooms.get_members(room_id)
        self.assertEqual((members[self.alice].membership, members[self.alice].event_id), ("knock", event_id))
        knocks = yield self.hs1.store.rooms.get_rooms_for_user(self.alice, memberships=("knock",))
        self.assertEqual([m.room_id for m in knocks], [room_id])
        stored = yield self.hs1.store.events.get_event(event_id)
        self.assertEqual(stored.pdu["content"], {"membership": "knock", "reason": "hi"})
        carried = stored.pdu["unsigned"]["knock_room_state"]
        self.assertIn("m.room.create", [e["type"] for e in carried])
        self.assertEqual(set(carried[0]), {"type", "state_key", "sender", "content"})

    @defer.inlineCallbacks
    def test_knock_on_public_room_refused(self):
        """Knocking on a room whose join rule is not knock fails with 403."""
        room_id = yield self.bob_room()
        error = yield self.assertFailure(
            self.hs1.remote_rooms.knock_remote_room(room_id, self.alice, [HS2], {}), MatrixError
        )
        self.assertEqual(error.code, 403)


class AliasTests(TwoServerFixture, unittest.TestCase):
    @defer.inlineCallbacks
    def test_resolve_remote_alias(self):
        """A remote alias resolves to its room and servers; joining by alias works."""
        room_id = yield self.bob_room(room_alias_name="lobby")
        resolved = yield self.hs1.remote_rooms.resolve_alias(f"#lobby:{HS2}")
        self.assertEqual(resolved, (room_id, [HS2]))
        joined = yield self.hs1.membership.join(self.alice, f"#lobby:{HS2}")
        self.assertEqual(joined, room_id)

    @defer.inlineCallbacks
    def test_unknown_alias(self):
        """An alias the other server does not know gives 404 M_NOT_FOUND."""
        error = yield self.assertFailure(self.hs1.remote_rooms.resolve_alias(f"#nope:{HS2}"), MatrixError)
        self.assertEqual((error.code, error.errcode), (404, "M_NOT_FOUND"))


class TemplateTests(unittest.TestCase):
    def test_v1_event_id_generated(self):
        """In room version 1 the filled template gets an event ID on our server."""
        key = generate_signing_key("k1")
        template = {"type": "m.room.member", "room_id": "!r:two.example", "sender": "@a:one.example",
                    "state_key": "@a:one.example", "content": {"membership": "join"}, "origin": "two.example",
                    "depth": 3, "prev_events": [], "auth_events": []}
        event_id, pdu = fill_membership_template(template, "1", "@a:one.example", "!r:two.example", "join", {},
                                                 "one.example", key, 1234, random_bytes=lambda n: b"\0" * n)
        self.assertEqual(event_id, pdu["event_id"])
        self.assertTrue(event_id.endswith(":one.example"))
        self.assertNotIn("origin", pdu)
        self.assertEqual(pdu["origin_server_ts"], 1234)
        self.assertIn("one.example", pdu["signatures"])


class DeliveryTests(TwoServerFixture, unittest.TestCase):
    """The sender's transactions accepted by the other server's receiver."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.hs3 = yield InProcessServer.build(self, "three.example", self.network, self.keyring)
        self.carol = yield self.hs3.register("carol")
        for server in (self.hs1, self.hs2, self.hs3):
            yield server.sender.startService()
            self.addCleanup(server.sender.stopService)

    @defer.inlineCallbacks
    def settle(self):
        for _ in range(3):
            for server in (self.hs1, self.hs2, self.hs3):
                yield server.sender.idle()

    @defer.inlineCallbacks
    def test_messages_both_ways(self):
        """After alice joins bob's room, each one's message reaches the other server."""
        room_id = yield self.bob_room()
        yield self.hs1.membership.join(self.alice, room_id, servers=[HS2])
        from_alice, _ = yield self.hs1.creator.send_event(room_id, self.alice, "m.room.message",
                                                          {"msgtype": "m.text", "body": "hi bob"})
        from_bob, _ = yield self.hs2.creator.send_event(room_id, self.bob, "m.room.message",
                                                        {"msgtype": "m.text", "body": "hi alice"})
        yield self.settle()
        on_hs2 = yield self.hs2.store.events.get_event(from_alice)
        on_hs1 = yield self.hs1.store.events.get_event(from_bob)
        self.assertIsNotNone(on_hs2)
        self.assertIsNotNone(on_hs1)
        self.assertFalse(on_hs2.outlier or on_hs2.soft_failed)
        self.assertFalse(on_hs1.outlier or on_hs1.soft_failed)

    @defer.inlineCallbacks
    def test_join_passed_on_by_resident(self):
        """When carol joins through bob's server, bob's server passes her join on to alice's."""
        room_id = yield self.bob_room()
        yield self.hs1.membership.join(self.alice, room_id, servers=[HS2])
        yield self.settle()
        del self.hs2.client.calls[:]
        yield self.hs3.membership.join(self.carol, room_id, servers=[HS2])
        yield self.settle()
        members = yield self.hs1.store.rooms.get_members(room_id, membership="join")
        self.assertEqual(sorted(members), sorted([self.alice, self.bob, self.carol]))
        self.assertIn(("send_transaction", HS1), self.hs2.client.calls)

    @defer.inlineCallbacks
    def test_typing_reaches_other_server(self):
        """Alice typing on her server shows on bob's."""
        room_id = yield self.bob_room()
        yield self.hs1.membership.join(self.alice, room_id, servers=[HS2])
        yield self.settle()
        self.hs1.typing.set_typing(room_id, self.alice, True, 10_000)
        yield self.settle()
        self.assertEqual(self.hs2.typing.typing_in(room_id), [self.alice])
