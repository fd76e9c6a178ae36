"""Three whole homeservers (a.test, b.test, c.test) federating over the in-memory network,
driven only through the Client-Server API: joins by alias, invites accepted and rejected,
messages all ways, leaves, kicks, bans, a restricted join, a server ACL, typing and receipts,
and state changes reaching every server identically.

Spec: Server-Server API v1.19 ("Joining Rooms", "Inviting to a room", "Leaving Rooms
(Rejecting Invites)", "Restricted rooms", "Server Access Control Lists (ACLs)",
"Typing Notifications", "Receipts"); Client-Server API ("Room membership", "/sync").
"""

from urllib.parse import quote

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from mxref.testing.client import CLIENT_V3, ClientError, InMemoryClient
from mxref.testing.homeserver import make_federated_homeservers

SERVERS = ["a.test", "b.test", "c.test"]


@defer.inlineCallbacks
def eventually(check, timeout=10.0, interval=0.02):
    """Retry ``check()`` (a Deferred-returning callable) until it returns a true value.

    :returns: Deferred firing with that value; fails with ``AssertionError`` after ``timeout``.
    """
    waited = 0.0
    last = None
    while True:
        last = yield check()
        if last:
            return last
        if waited >= timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        yield task.deferLater(reactor, interval, lambda: None)
        waited += interval


def _room_path(room_id):
    return f"{CLIENT_V3}/rooms/{quote(room_id, safe='')}"


def full_state(client, room_id):
    """``GET /rooms/{roomId}/state``; Deferred firing with ``{(type, state_key): event}``."""
    d = client.request("GET", f"{_room_path(room_id)}/state")
    return d.addCallback(lambda events: {(e["type"], e["state_key"]): e for e in events})


@defer.inlineCallbacks
def state_content(client, room_id, event_type, state_key=""):
    """The content of a current state event as ``client`` sees it, or ``None`` if there is none."""
    try:
        content = yield client.get_state(room_id, event_type, state_key)
    except ClientError as e:
        if e.code == 404:
            return None
        raise
    return content


def membership(client, room_id, user_id):
    """A user's membership as ``client`` sees it in the room's current state (or ``None``)."""
    d = state_content(client, room_id, "m.room.member", user_id)
    return d.addCallback(lambda content: content.get("membership") if content else None)


@defer.inlineCallbacks
def joined_members(client, room_id):
    """The user IDs ``/joined_members`` lists."""
    try:
        result = yield client.request("GET", f"{_room_path(room_id)}/joined_members")
    except ClientError:
        return set()
    return set(result["joined"])


def timeline_events(sync, room_id, section="join"):
    """The timeline events of one room in a sync response's ``rooms.<section>``."""
    room = sync["rooms"].get(section, {}).get(room_id, {})
    return room.get("timeline", {}).get("events", [])


def bodies_of(events):
    """The bodies of the ``m.room.message`` events among ``events``, in order."""
    return [e["content"].get("body") for e in events if e["type"] == "m.room.message"]


class SyncReader:
    """Follows one client's ``/sync`` incrementally, keeping every room's timeline in order, the
    ephemeral events and the rooms last seen in each section."""

    def __init__(self, client):
        self.client = client
        self.since = None
        self.timelines = {}
        self.ephemeral = {}
        self.sections = {"join": {}, "invite": {}, "leave": {}}

    @defer.inlineCallbacks
    def poll(self):
        """One ``/sync`` (timeout 0) from the last position. :returns: Deferred firing with self."""
        sync = yield self.client.sync(since=self.since)
        self.since = sync["next_batch"]
        for section in self.sections:
            for room_id, room in sync["rooms"].get(section, {}).items():
                self.sections[section][room_id] = room
                for other in self.sections:
                    if other != section:
                        self.sections[other].pop(room_id, None)
                self.timelines.setdefault(room_id, []).extend(room.get("timeline", {}).get("events", []))
                if section == "join":
                    self.ephemeral.setdefault(room_id, []).extend(room.get("ephemeral", {}).get("events", []))
        return self

    def bodies(self, room_id):
        """The message bodies of a room seen so far, in timeline order."""
        return bodies_of(self.timelines.get(room_id, []))


class ThreeServerTestCase(unittest.TestCase):
    """alice on a.test, bob on b.test, carol on c.test (and dave, a second user on c.test)."""

    @defer.inlineCallbacks
    def setUp(self):
        self.network, self.servers = yield make_federated_homeservers(self, reactor, SERVERS)
        self.alice = InMemoryClient(self.servers["a.test"], reactor)
        self.bob = InMemoryClient(self.servers["b.test"], reactor)
        self.carol = InMemoryClient(self.servers["c.test"], reactor)
        self.dave = InMemoryClient(self.servers["c.test"], reactor)
        yield self.alice.register("alice")
        yield self.bob.register("bob")
        yield self.carol.register("carol")
        yield self.dave.register("dave")
        self.clients = [self.alice, self.bob, self.carol]

    @defer.inlineCallbacks
    def room_with_everyone(self, **create):
        """alice's public room, joined by bob and carol, every server seeing all three joined.

        :returns: Deferred firing with the room ID.
        """
        create.setdefault("preset", "public_chat")
        room_id = yield self.alice.create_room(**create)
        yield self.bob.join(room_id, via=["a.test"])
        yield self.carol.join(room_id, via=["a.test"])
        everyone = {c.user_id for c in self.clients}
        for client in self.clients:
            yield eventually(lambda c=client: joined_members(c, room_id).addCallback(lambda m: m == everyone))
        return room_id

    def see_membership(self, client, room_id, user_id, wanted):
        """Wait until ``client`` sees ``user_id``'s membership become ``wanted``."""
        return eventually(lambda: membership(client, room_id, user_id).addCallback(lambda m: m == wanted))


class JoinByAliasTests(ThreeServerTestCase):
    """Remote alias resolution and joins from two other servers."""

    @defer.inlineCallbacks
    def test_join_by_alias_from_two_servers(self):
        """bob (b.test) and carol (c.test) join alice's room by its alias; all three servers list all three members."""
        room_id = yield self.alice.create_room(preset="public_chat", room_alias_name="plaza", name="Plaza")
        resolved = yield self.carol.request("GET", f"{CLIENT_V3}/directory/room/{quote('#plaza:a.test')}")
        self.assertEqual(resolved["room_id"], room_id)
        self.assertIn("a.test", resolved["servers"])
        self.assertEqual((yield self.bob.join("#plaza:a.test")), room_id)
        self.assertEqual((yield self.carol.join("#plaza:a.test")), room_id)
        everyone = {c.user_id for c in self.clients}
        for client in self.clients:
            yield eventually(lambda c=client: joined_members(c, room_id).addCallback(lambda m: m == everyone))
            name = yield client.get_state(room_id, "m.room.name")
            self.assertEqual(name, {"name": "Plaza"})
        # a.test was asked about the alias over federation.
        queries = [r for r in self.network.requests if r[1] == "a.test" and "/query/directory" in r[3]]
        self.assertTrue(queries)

    @defer.inlineCallbacks
    def test_unknown_remote_alias(self):
        """Joining an alias that a.test does not know fails with 404 M_NOT_FOUND."""
        with self.assertRaises(ClientError) as caught:
            yield self.bob.join("#nowhere:a.test")
        self.assertEqual((caught.exception.code, caught.exception.errcode), (404, "M_NOT_FOUND"))


class InviteTests(ThreeServerTestCase):
    """Invites of users on other servers, accepted and rejected."""

    @defer.inlineCallbacks
    def test_remote_invite_accepted(self):
        """carol then bob accept remote invites: bob's /sync rooms.invite has the stripped state; after his join every server sees him joined."""
        room_id = yield self.alice.create_room(preset="private_chat", name="Secret")
        yield self.alice.invite(room_id, self.carol.user_id)
        carol_sync = SyncReader(self.carol)
        yield eventually(lambda: carol_sync.poll().addCallback(lambda r: room_id in r.sections["invite"]))
        yield self.carol.join(room_id)
        yield self.see_membership(self.alice, room_id, self.carol.user_id, "join")

        yield self.alice.invite(room_id, self.bob.user_id)
        bob_sync = SyncReader(self.bob)
        yield eventually(lambda: bob_sync.poll().addCallback(lambda r: room_id in r.sections["invite"]))
        invite_state = bob_sync.sections["invite"][room_id]["invite_state"]["events"]
        by_key = {(e["type"], e.get("state_key")): e for e in invite_state}
        self.assertEqual(by_key[("m.room.name", "")]["content"], {"name": "Secret"})
        self.assertEqual(by_key[("m.room.join_rules", "")]["content"]["join_rule"], "invite")
        self.assertIn(("m.room.create", ""), by_key)
        invite = by_key[("m.room.member", self.bob.user_id)]
        self.assertEqual((invite["sender"], invite["content"]["membership"]), (self.alice.user_id, "invite"))
        for event in invite_state:
            self.assertEqual(set(event) - {"type", "state_key", "content", "sender"}, set())

        # carol's server (in the room) also sees the invite.
        yield self.see_membership(self.carol, room_id, self.bob.user_id, "invite")
        self.assertEqual((yield self.bob.join(room_id)), room_id)
        for client in self.clients:
            yield self.see_membership(client, room_id, self.bob.user_id, "join")
        yield eventually(lambda: bob_sync.poll().addCallback(lambda r: room_id in r.sections["join"]))
        self.assertNotIn(room_id, bob_sync.sections["invite"])

    @defer.inlineCallbacks
    def test_remote_invite_rejected(self):
        """carol rejects alice's invite (make_leave/send_leave through a.test); a.test and b.test see her leave, her /sync drops the invite."""
        room_id = yield self.alice.create_room(preset="private_chat")
        yield self.alice.invite(room_id, self.bob.user_id)
        yield self.bob.join(room_id, via=["a.test"])
        yield self.see_membership(self.bob, room_id, self.bob.user_id, "join")
        yield self.alice.invite(room_id, self.carol.user_id)
        carol_sync = SyncReader(self.carol)
        yield eventually(lambda: carol_sync.poll().addCallback(lambda r: room_id in r.sections["invite"]))
        yield self.carol.leave(room_id)
        for client in (self.alice, self.bob):
            yield self.see_membership(client, room_id, self.carol.user_id, "leave")
        sent = [r for r in self.network.requests if r[0] == "c.test" and "send_leave" in r[3]]
        self.assertTrue(sent)
        yield eventually(lambda: carol_sync.poll().addCallback(lambda r: room_id in r.sections["leave"]))
        self.assertNotIn(room_id, carol_sync.sections["invite"])
        # She can no longer join: the invite is gone.
        with self.assertRaises(ClientError) as caught:
            yield self.carol.join(room_id, via=["a.test"])
        self.assertEqual(caught.exception.code, 403)


class MessageTests(ThreeServerTestCase):
    """Messages from every server reach every other server."""

    @defer.inlineCallbacks
    def test_messages_all_ways_in_order(self):
        """Messages sent in turn from a, b and c appear in the same order in every server's /sync and /messages."""
        room_id = yield self.room_with_everyone()
        readers = [SyncReader(c) for c in self.clients]
        for reader in readers:
            yield reader.poll()
        sent = []
        for round_ in range(2):
            for client in self.clients:
                body = f"{client.user_id} says {round_}"
                yield client.send_text(room_id, body)
                sent.append(body)
                # Each message reaches everyone before the next one is sent: one total order.
                for reader in readers:
                    yield eventually(lambda r=reader, b=body: r.poll().addCallback(lambda r: b in r.bodies(room_id)))
        for reader in readers:
            self.assertEqual(reader.bodies(room_id), sent)
        for client in self.clients:
            page = yield client.messages(room_id, direction="b", limit=50)
            self.assertEqual(list(reversed(bodies_of(page["chunk"]))), sent)
            forwards = yield client.messages(room_id, direction="f", limit=50)
            self.assertEqual(bodies_of(forwards["chunk"]), sent)

    @defer.inlineCallbacks
    def test_concurrent_messages_reach_everyone(self):
        """Messages sent at the same time from all three servers all reach every server (forks of the DAG merge)."""
        room_id = yield self.room_with_everyone()
        sent = yield defer.gatherResults(
            [c.send_text(room_id, f"burst {i} from {c.user_id}") for i in range(3) for c in self.clients]
        )
        self.assertEqual(len(sent), 9)
        wanted = {f"burst {i} from {c.user_id}" for i in range(3) for c in self.clients}

        @defer.inlineCallbacks
        def all_seen(client):
            page = yield client.messages(room_id, direction="b", limit=100)
            return wanted <= set(bodies_of(page["chunk"]))

        for client in self.clients:
            yield eventually(lambda c=client: all_seen(c))
        # A message after the burst cites the merged extremities and still reaches everyone.
        yield self.bob.send_text(room_id, "after the burst")
        for client in self.clients:
            yield eventually(
                lambda c=client: c.messages(room_id, limit=1).addCallback(
                    lambda p: bodies_of(p["chunk"]) == ["after the burst"]
                )
            )


class LeaveKickBanTests(ThreeServerTestCase):
    """Leaving, kicking and banning across servers."""

    @defer.inlineCallbacks
    def test_remote_user_leaves(self):
        """bob leaves; a.test and c.test see it, bob's /sync moves the room to leave, and messages no longer reach b.test."""
        room_id = yield self.room_with_everyone()
        bob_sync = SyncReader(self.bob)
        yield bob_sync.poll()
        yield self.bob.leave(room_id)
        for client in (self.alice, self.carol):
            yield self.see_membership(client, room_id, self.bob.user_id, "leave")
        yield eventually(lambda: bob_sync.poll().addCallback(lambda r: room_id in r.sections["leave"]))
        yield self.alice.send_text(room_id, "bob has gone")
        carol_sync = SyncReader(self.carol)
        yield eventually(lambda: carol_sync.poll().addCallback(lambda r: "bob has gone" in r.bodies(room_id)))
        after_leave = [
            r for r in self.network.requests if r[1] == "b.test" and r[3].startswith("/_matrix/federation/v1/send/")
        ]
        yield task.deferLater(reactor, 0.2, lambda: None)
        later = [r for r in self.network.requests if r[1] == "b.test" and r[3].startswith("/_matrix/federation/v1/send/")]
        yield bob_sync.poll()
        self.assertNotIn("bob has gone", bob_sync.bodies(room_id))
        self.assertEqual(len(later), len(after_leave))

    @defer.inlineCallbacks
    def test_kick_remote_user(self):
        """alice kicks carol; c.test sees the kick and carol gets the room in her /sync leave section with the kick."""
        room_id = yield self.room_with_everyone()
        carol_sync = SyncReader(self.carol)
        yield carol_sync.poll()
        yield self.alice.membership_of(room_id, "kick", self.carol.user_id, reason="out")
        for client in (self.bob, self.carol):
            yield self.see_membership(client, room_id, self.carol.user_id, "leave")
        yield eventually(lambda: carol_sync.poll().addCallback(lambda r: room_id in r.sections["leave"]))
        kicks = [
            e
            for e in carol_sync.sections["leave"][room_id]["timeline"]["events"]
            if e["type"] == "m.room.member" and e["state_key"] == self.carol.user_id
        ]
        self.assertEqual(kicks[-1]["sender"], self.alice.user_id)
        self.assertEqual(kicks[-1]["content"], {"membership": "leave", "reason": "out"})
        # A kicked user of a public room may join again.
        yield self.carol.join(room_id, via=["a.test"])
        yield self.see_membership(self.bob, room_id, self.carol.user_id, "join")

    @defer.inlineCallbacks
    def test_ban_and_unban_remote_user(self):
        """alice bans bob; every server sees the ban and bob cannot rejoin; after unban he can."""
        room_id = yield self.room_with_everyone()
        bob_sync = SyncReader(self.bob)
        yield bob_sync.poll()
        yield self.alice.membership_of(room_id, "ban", self.bob.user_id)
        for client in (self.alice, self.carol):
            yield self.see_membership(client, room_id, self.bob.user_id, "ban")
        yield eventually(lambda: bob_sync.poll().addCallback(lambda r: room_id in r.sections["leave"]))
        for via in ("a.test", "c.test"):
            with self.assertRaises(ClientError) as caught:
                yield self.bob.join(room_id, via=[via])
            self.assertEqual(caught.exception.code, 403)
        yield self.alice.membership_of(room_id, "unban", self.bob.user_id)
        yield self.see_membership(self.carol, room_id, self.bob.user_id, "leave")
        self.assertEqual((yield self.bob.join(room_id, via=["c.test"])), room_id)
        for client in self.clients:
            yield self.see_membership(client, room_id, self.bob.user_id, "join")
        yield self.bob.send_text(room_id, "back again")
        yield eventually(
            lambda: self.alice.messages(room_id, limit=1).addCallback(lambda p: bodies_of(p["chunk"]) == ["back again"])
        )


class RestrictedJoinTests(ThreeServerTestCase):
    """A room whose join rule admits members of another room."""

    @defer.inlineCallbacks
    def test_restricted_join_through_resident(self):
        """carol, in the allowed room, joins through a.test, which names alice in join_authorised_via_users_server; dave is refused."""
        space_id = yield self.alice.create_room(preset="public_chat", name="Allowed")
        yield self.carol.join(space_id, via=["a.test"])
        yield self.see_membership(self.alice, space_id, self.carol.user_id, "join")
        room_id = yield self.alice.create_room(
            preset="private_chat",
            room_version="10",
            initial_state=[
                {
                    "type": "m.room.join_rules",
                    "state_key": "",
                    "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space_id}]},
                }
            ],
        )
        yield self.bob.join(space_id, via=["a.test"])
        yield self.bob.join(room_id, via=["a.test"])
        self.assertEqual((yield self.carol.join(room_id, via=["a.test"])), room_id)
        for client in (self.alice, self.bob, self.carol):
            event = yield client.request(
                "GET", f"{_room_path(room_id)}/state/m.room.member/{quote(self.carol.user_id)}", query={"format": "event"}
            )
            self.assertEqual(event["content"]["membership"], "join")
            self.assertEqual(event["content"]["join_authorised_via_users_server"], self.alice.user_id)
        with self.assertRaises(ClientError) as caught:
            yield self.dave.join(room_id, via=["a.test"])
        self.assertEqual(caught.exception.code, 403)
        self.assertEqual((yield membership(self.alice, room_id, self.dave.user_id)), None)


class ServerAclTests(ThreeServerTestCase):
    """An ``m.room.server_acl`` that shuts c.test out."""

    @defer.inlineCallbacks
    def test_acl_shuts_out_a_server(self):
        """After an ACL denying c.test, a and b refuse c.test's events and requests (403) but keep chatting."""
        room_id = yield self.room_with_everyone()
        yield self.alice.set_state(room_id, "m.room.server_acl", {"allow": ["*"], "deny": ["c.test"], "allow_ip_literals": False})
        for client in self.clients:
            yield eventually(
                lambda c=client: state_content(c, room_id, "m.room.server_acl").addCallback(
                    lambda acl: acl is not None and acl.get("deny") == ["c.test"]
                )
            )
        yield self.carol.send_text(room_id, "can you hear me")
        yield self.alice.send_text(room_id, "a to b")
        yield self.bob.send_text(room_id, "b to a")
        for client in (self.alice, self.bob):
            yield eventually(
                lambda c=client: c.messages(room_id, limit=10).addCallback(
                    lambda p: {"a to b", "b to a"} <= set(bodies_of(p["chunk"]))
                )
            )
        # Give c.test's transactions time to arrive; they are refused.
        yield task.deferLater(reactor, 0.3, lambda: None)
        for client in (self.alice, self.bob):
            page = yield client.messages(room_id, limit=20)
            self.assertNotIn("can you hear me", bodies_of(page["chunk"]))
        # c.test's requests for the room get 403.
        federation = self.servers["c.test"].federation_client
        event_id = yield self.alice.send_text(room_id, "for a and b")
        yield eventually(
            lambda: self.bob.messages(room_id, limit=1).addCallback(lambda p: bodies_of(p["chunk"]) == ["for a and b"])
        )
        for destination in ("a.test", "b.test"):
            requests = [
                federation.make_join(destination, room_id, self.dave.user_id, ["10", "11"]),
                federation.get_state_ids(destination, room_id, event_id),
                federation.backfill(destination, room_id, [event_id], 10),
                federation.get_event_auth(destination, room_id, event_id),
            ]
            for request in requests:
                with self.assertRaises(Exception) as caught:
                    yield request
                self.assertEqual(getattr(caught.exception, "code", None), 403)
        # Its typing notifications and receipts are dropped too.
        yield self.carol.request(
            "PUT", f"{_room_path(room_id)}/typing/{quote(self.carol.user_id)}", {"typing": True, "timeout": 1000}
        )
        yield self.carol.request("POST", f"{_room_path(room_id)}/receipt/m.read/{quote(event_id)}", {})
        yield self.alice.request(
            "PUT", f"{_room_path(room_id)}/typing/{quote(self.alice.user_id)}", {"typing": True, "timeout": 1000}
        )
        yield self.alice.request("POST", f"{_room_path(room_id)}/receipt/m.read/{quote(event_id)}", {})

        @defer.inlineCallbacks
        def alice_ephemeral_seen_by_bob():
            sync = yield self.bob.sync()
            events = sync["rooms"]["join"].get(room_id, {}).get("ephemeral", {}).get("events", [])
            typing = [e["content"]["user_ids"] for e in events if e["type"] == "m.typing"]
            readers = [set(e["content"].get(event_id, {}).get("m.read", {})) for e in events if e["type"] == "m.receipt"]
            if typing == [[self.alice.user_id]] and readers and self.alice.user_id in readers[0]:
                return typing, readers
            return None

        yield self.servers["c.test"].federation_sender.idle()
        typing, readers = yield eventually(alice_ephemeral_seen_by_bob)
        self.assertNotIn(self.carol.user_id, readers[0])
        yield self.alice.request("PUT", f"{_room_path(room_id)}/typing/{quote(self.alice.user_id)}", {"typing": False})
        yield self.carol.request("PUT", f"{_room_path(room_id)}/typing/{quote(self.carol.user_id)}", {"typing": False})
        # c.test is still in the room by its own lights: dave's join there is local, and refused
        # by a.test and b.test like every other c.test event.
        yield self.dave.join(room_id, via=["a.test"])
        yield self.alice.send_text(room_id, "still a to b")
        yield eventually(
            lambda: self.bob.messages(room_id, limit=1).addCallback(lambda p: bodies_of(p["chunk"]) == ["still a to b"])
        )
        for client in (self.alice, self.bob):
            self.assertIsNone((yield membership(client, room_id, self.dave.user_id)))


class EphemeralTests(ThreeServerTestCase):
    """Typing notifications and read receipts as EDUs."""

    @defer.inlineCallbacks
    def test_typing_crosses_servers(self):
        """alice types; bob and carol see her in m.typing in /sync; when she stops, they see nobody typing."""
        room_id = yield self.room_with_everyone()
        yield self.alice.request(
            "PUT", f"{_room_path(room_id)}/typing/{quote(self.alice.user_id)}", {"typing": True, "timeout": 30000}
        )

        def typing_users(client, wanted):
            @defer.inlineCallbacks
            def check():
                sync = yield client.sync()
                room = sync["rooms"]["join"].get(room_id, {})
                for event in room.get("ephemeral", {}).get("events", []):
                    if event["type"] == "m.typing":
                        return event["content"]["user_ids"] == wanted
                return wanted == []

            return check

        for client in (self.bob, self.carol):
            yield eventually(typing_users(client, [self.alice.user_id]))
        yield self.alice.request("PUT", f"{_room_path(room_id)}/typing/{quote(self.alice.user_id)}", {"typing": False})
        for client in (self.bob, self.carol):
            yield eventually(typing_users(client, []))

    @defer.inlineCallbacks
    def test_receipts_cross_servers(self):
        """bob's read receipt on alice's message shows in alice's and carol's /sync ephemeral m.receipt."""
        room_id = yield self.room_with_everyone()
        event_id = yield self.alice.send_text(room_id, "read me")
        yield eventually(
            lambda: self.bob.messages(room_id, limit=1).addCallback(lambda p: bodies_of(p["chunk"]) == ["read me"])
        )
        yield self.bob.request("POST", f"{_room_path(room_id)}/receipt/m.read/{quote(event_id)}", {})

        def receipt_seen(client):
            @defer.inlineCallbacks
            def check():
                sync = yield client.sync()
                room = sync["rooms"]["join"].get(room_id, {})
                for event in room.get("ephemeral", {}).get("events", []):
                    if event["type"] == "m.receipt":
                        readers = event["content"].get(event_id, {}).get("m.read", {})
                        if self.bob.user_id in readers:
                            return True
                return False

            return check

        for client in (self.alice, self.carol):
            yield eventually(receipt_seen(client))


class StateConvergenceTests(ThreeServerTestCase):
    """State changes made on one server reach the others' current state."""

    @defer.inlineCallbacks
    def test_topic_and_power_levels_identical_everywhere(self):
        """A topic set on a.test, power given to bob, then a topic set by bob: /state is identical on all three servers."""
        room_id = yield self.room_with_everyone()
        yield self.alice.set_state(room_id, "m.room.topic", {"topic": "from a"})
        power = yield self.alice.get_state(room_id, "m.room.power_levels")
        power["users"][self.bob.user_id] = 50
        power.setdefault("events", {})["m.room.topic"] = 50
        yield self.alice.set_state(room_id, "m.room.power_levels", power)
        yield eventually(
            lambda: self.bob.get_state(room_id, "m.room.power_levels").addCallback(
                lambda p: p["users"].get(self.bob.user_id) == 50
            )
        )
        yield self.bob.set_state(room_id, "m.room.topic", {"topic": "from b"})
        # carol has no power to change the topic.
        with self.assertRaises(ClientError) as caught:
            yield self.carol.set_state(room_id, "m.room.topic", {"topic": "from c"})
        self.assertEqual(caught.exception.code, 403)

        @defer.inlineCallbacks
        def states_agree():
            states = []
            for client in self.clients:
                state = yield full_state(client, room_id)
                states.append({key: e["event_id"] for key, e in state.items()})
            topic = yield self.carol.get_state(room_id, "m.room.topic")
            return states[0] == states[1] == states[2] and topic == {"topic": "from b"}

        yield eventually(states_agree)
        state = yield full_state(self.carol, room_id)
        self.assertEqual(state[("m.room.power_levels", "")]["content"]["users"][self.bob.user_id], 50)
        self.assertEqual(state[("m.room.topic", "")]["sender"], self.bob.user_id)


class MoreMembershipTests(ThreeServerTestCase):
    """Membership changes made from a server other than the room's creator's."""

    @defer.inlineCallbacks
    def test_invite_from_second_server_rejected_through_it(self):
        """bob (b.test) invites carol; she rejects through b.test, which passes her leave on to a.test."""
        room_id = yield self.alice.create_room(preset="public_chat")
        yield self.bob.join(room_id, via=["a.test"])
        yield self.see_membership(self.bob, room_id, self.bob.user_id, "join")
        yield self.bob.invite(room_id, self.carol.user_id)
        yield self.see_membership(self.alice, room_id, self.carol.user_id, "invite")
        carol_sync = SyncReader(self.carol)
        yield eventually(lambda: carol_sync.poll().addCallback(lambda r: room_id in r.sections["invite"]))
        yield self.carol.leave(room_id)
        sent = [r for r in self.network.requests if r[:2] == ("c.test", "b.test") and "send_leave" in r[3]]
        self.assertTrue(sent)
        for client in (self.alice, self.bob):
            yield self.see_membership(client, room_id, self.carol.user_id, "leave")

    @defer.inlineCallbacks
    def test_invite_from_second_server_accepted(self):
        """bob (b.test) invites carol to an invite-only room; she joins and every server sees her joined."""
        room_id = yield self.alice.create_room(preset="private_chat")
        yield self.alice.invite(room_id, self.bob.user_id)
        yield self.bob.join(room_id, via=["a.test"])
        power = yield self.alice.get_state(room_id, "m.room.power_levels")
        power["invite"] = 0
        yield self.alice.set_state(room_id, "m.room.power_levels", power)
        yield eventually(
            lambda: self.bob.get_state(room_id, "m.room.power_levels").addCallback(lambda p: p.get("invite") == 0)
        )
        yield self.bob.invite(room_id, self.carol.user_id)
        carol_sync = SyncReader(self.carol)
        yield eventually(lambda: carol_sync.poll().addCallback(lambda r: room_id in r.sections["invite"]))
        self.assertEqual((yield self.carol.join(room_id)), room_id)
        for client in self.clients:
            yield self.see_membership(client, room_id, self.carol.user_id, "join")

    @defer.inlineCallbacks
    def test_leave_and_rejoin_catches_up(self):
        """bob leaves, a and c chat, bob rejoins: he sees new messages and every server has the same state."""
        room_id = yield self.room_with_everyone()
        yield self.bob.leave(room_id)
        yield self.see_membership(self.alice, room_id, self.bob.user_id, "leave")
        yield self.alice.set_state(room_id, "m.room.topic", {"topic": "while bob was away"})
        yield self.carol.send_text(room_id, "while bob was away")
        yield eventually(
            lambda: self.alice.messages(room_id, limit=1).addCallback(
                lambda p: bodies_of(p["chunk"]) == ["while bob was away"]
            )
        )
        self.assertEqual((yield self.bob.join(room_id, via=["c.test"])), room_id)
        yield self.see_membership(self.alice, room_id, self.bob.user_id, "join")
        self.assertEqual((yield self.bob.get_state(room_id, "m.room.topic")), {"topic": "while bob was away"})
        yield self.alice.send_text(room_id, "welcome back")
        yield self.bob.send_text(room_id, "glad to be back")
        for client in self.clients:
            yield eventually(
                lambda c=client: c.messages(room_id, limit=5).addCallback(
                    lambda p: {"welcome back", "glad to be back"} <= set(bodies_of(p["chunk"]))
                )
            )

        @defer.inlineCallbacks
        def states_agree():
            states = []
            for client in self.clients:
                state = yield full_state(client, room_id)
                states.append({key: e["event_id"] for key, e in state.items()})
            return states[0] == states[1] == states[2]

        yield eventually(states_agree)

    @defer.inlineCallbacks
    def test_remote_moderator_kicks_third_server_user(self):
        """bob (b.test), made moderator by alice, kicks carol (c.test): a.test and c.test see the kick."""
        room_id = yield self.room_with_everyone()
        power = yield self.alice.get_state(room_id, "m.room.power_levels")
        power["users"][self.bob.user_id] = 50
        yield self.alice.set_state(room_id, "m.room.power_levels", power)
        yield eventually(
            lambda: self.bob.get_state(room_id, "m.room.power_levels").addCallback(
                lambda p: p["users"].get(self.bob.user_id) == 50
            )
        )
        carol_sync = SyncReader(self.carol)
        yield carol_sync.poll()
        yield self.bob.membership_of(room_id, "kick", self.carol.user_id)
        for client in (self.alice, self.carol):
            yield self.see_membership(client, room_id, self.carol.user_id, "leave")
        yield eventually(lambda: carol_sync.poll().addCallback(lambda r: room_id in r.sections["leave"]))
        kick = carol_sync.timelines[room_id][-1]
        self.assertEqual((kick["sender"], kick["state_key"]), (self.bob.user_id, self.carol.user_id))

    @defer.inlineCallbacks
    def test_ban_before_join(self):
        """alice bans dave (c.test) before he ever joins: he cannot join although carol keeps c.test in the room."""
        room_id = yield self.room_with_everyone()
        yield self.alice.membership_of(room_id, "ban", self.dave.user_id)
        yield self.see_membership(self.carol, room_id, self.dave.user_id, "ban")
        with self.assertRaises(ClientError) as caught:
            yield self.dave.join(room_id, via=["a.test"])
        self.assertEqual(caught.exception.code, 403)

    @defer.inlineCallbacks
    def test_restricted_join_falls_back_to_an_authorising_server(self):
        """b.test cannot authorise carol's restricted join (no one there may invite); her join through b then a succeeds via a.test."""
        space_id = yield self.alice.create_room(preset="public_chat")
        yield self.carol.join(space_id, via=["a.test"])
        yield self.bob.join(space_id, via=["a.test"])
        room_id = yield self.alice.create_room(
            preset="public_chat",
            room_version="10",
            power_level_content_override={"invite": 50},
            initial_state=[
                {
                    "type": "m.room.join_rules",
                    "state_key": "",
                    "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space_id}]},
                }
            ],
        )
        yield self.bob.join(room_id, via=["a.test"])
        yield self.see_membership(self.bob, room_id, self.bob.user_id, "join")
        self.assertEqual((yield self.carol.join(room_id, via=["b.test", "a.test"])), room_id)
        asked = [r[1] for r in self.network.requests if r[0] == "c.test" and "/make_join/" in r[3]]
        self.assertEqual(asked[-2:], ["b.test", "a.test"])
        yield self.see_membership(self.bob, room_id, self.carol.user_id, "join")


class RedactionTests(ThreeServerTestCase):
    """Redactions cross servers."""

    @defer.inlineCallbacks
    def test_redaction_reaches_every_server(self):
        """alice redacts bob's message; every server shows it redacted (content empty)."""
        room_id = yield self.room_with_everyone()
        event_id = yield self.bob.send_text(room_id, "oops")
        for client in self.clients:
            yield eventually(
                lambda c=client: c.messages(room_id, limit=1).addCallback(lambda p: bodies_of(p["chunk"]) == ["oops"])
            )
        yield self.alice.request("PUT", f"{_room_path(room_id)}/redact/{quote(event_id)}/r1", {"reason": "spam"})

        def redacted(client):
            d = client.request("GET", f"{_room_path(room_id)}/event/{quote(event_id)}")
            return d.addCallback(lambda e: e["content"] == {} and "redacted_because" in e.get("unsigned", {}))

        for client in self.clients:
            yield eventually(lambda c=client: redacted(c))


class LateJoinerHistoryTests(ThreeServerTestCase):
    """A server joining late fetches older history with backfill, without disturbing /sync."""

    @defer.inlineCallbacks
    def test_history_before_join_is_paged_not_synced(self):
        """carol joins after a and b chatted: /messages (both directions) shows the whole history, and paging back brings nothing old into /sync."""
        room_id = yield self.alice.create_room(preset="public_chat", name="History")
        for i in range(3):
            yield self.alice.send_text(room_id, f"early {i}")
        yield self.bob.join(room_id, via=["a.test"])
        yield self.bob.send_text(room_id, "from bob")
        yield eventually(
            lambda: self.alice.messages(room_id, limit=1).addCallback(lambda p: bodies_of(p["chunk"]) == ["from bob"])
        )
        yield self.carol.join(room_id, via=["b.test"])
        sync = yield self.carol.sync()
        events = timeline_events(sync, room_id)
        self.assertEqual((events[-1]["type"], events[-1]["state_key"]), ("m.room.member", self.carol.user_id))
        history = ["early 0", "early 1", "early 2", "from bob"]
        backwards = yield self.carol.messages(room_id, direction="b", limit=50)
        self.assertEqual(list(reversed(bodies_of(backwards["chunk"]))), history)
        self.assertEqual(backwards["chunk"][-1]["type"], "m.room.create")
        forwards = yield self.carol.messages(room_id, direction="f", limit=50)
        self.assertEqual(bodies_of(forwards["chunk"]), history)
        self.assertEqual(forwards["chunk"][0]["type"], "m.room.create")
        later = yield self.carol.sync(since=sync["next_batch"])
        self.assertEqual(timeline_events(later, room_id), [])
        fresh = yield self.carol.sync()
        events = timeline_events(fresh, room_id)
        self.assertEqual((events[-1]["type"], events[-1]["state_key"]), ("m.room.member", self.carol.user_id))
        yield self.alice.send_text(room_id, "live again")
        yield eventually(
            lambda: self.carol.sync(since=later["next_batch"]).addCallback(
                lambda s: bodies_of(timeline_events(s, room_id)) == ["live again"]
            )
        )


class ConcurrentChangeTests(ThreeServerTestCase):
    """Changes made at the same moment on several servers converge to one state."""

    @defer.inlineCallbacks
    def states_agree(self, room_id):
        """The current state (event IDs) when all three servers' ``/state`` agree, else ``None``."""
        states = []
        for client in self.clients:
            state = yield full_state(client, room_id)
            states.append({key: e["event_id"] for key, e in state.items()})
        return states[0] if states[0] == states[1] == states[2] else None

    @defer.inlineCallbacks
    def test_simultaneous_joins_through_one_resident(self):
        """bob, carol and dave join through a.test at once; once alice speaks, every server lists all four members."""
        room_id = yield self.alice.create_room(preset="public_chat")
        yield defer.gatherResults(
            [c.join(room_id, via=["a.test"]) for c in (self.bob, self.carol, self.dave)], consumeErrors=True
        )
        # Each joiner was told the state before its own join: a join made at the same moment
        # reaches it with the next event that cites it.
        yield self.alice.send_text(room_id, "welcome all")
        everyone = {c.user_id for c in (self.alice, self.bob, self.carol, self.dave)}
        for client in self.clients:
            yield eventually(lambda c=client: joined_members(c, room_id).addCallback(lambda m: m == everyone))
        yield eventually(lambda: self.states_agree(room_id))

    @defer.inlineCallbacks
    def test_simultaneous_topics_resolve_identically(self):
        """alice, bob and carol (all allowed) set the topic at once: every server ends with the same topic event."""
        room_id = yield self.room_with_everyone()
        power = yield self.alice.get_state(room_id, "m.room.power_levels")
        power["users"][self.bob.user_id] = 100
        power["users"][self.carol.user_id] = 100
        yield self.alice.set_state(room_id, "m.room.power_levels", power)
        for client in self.clients:
            yield eventually(
                lambda c=client: c.get_state(room_id, "m.room.power_levels").addCallback(
                    lambda p: self.carol.user_id in p["users"]
                )
            )
        sent = yield defer.gatherResults(
            [c.set_state(room_id, "m.room.topic", {"topic": f"by {c.user_id}"}) for c in self.clients]
        )
        state = yield eventually(lambda: self.states_agree(room_id))
        self.assertIn(state[("m.room.topic", "")], sent)
        yield self.bob.send_text(room_id, "after the race")
        yield eventually(
            lambda: self.carol.messages(room_id, limit=1).addCallback(
                lambda p: bodies_of(p["chunk"]) == ["after the race"]
            )
        )
        self.assertEqual((yield eventually(lambda: self.states_agree(room_id))), state)
