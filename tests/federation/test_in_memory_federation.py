"""Whole homeservers federating over the in-memory network, driven through the Client-Server API."""

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from mxref.testing.client import ClientError, InMemoryClient
from mxref.testing.homeserver import make_federated_homeservers


@defer.inlineCallbacks
def eventually(check, timeout=10.0, interval=0.02):
    """Retry ``check()`` (a Deferred-returning callable) until it returns a true value."""
    waited = 0.0
    while True:
        result = yield check()
        if result:
            return result
        if waited >= timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        yield task.deferLater(reactor, interval, lambda: None)
        waited += interval


def timeline_bodies(sync, room_id):
    """The message bodies of a room's timeline in a sync response."""
    room = sync["rooms"]["join"].get(room_id, {})
    return [e["content"].get("body") for e in room.get("timeline", {}).get("events", []) if e["type"] == "m.room.message"]


class TwoServerTests(unittest.TestCase):
    """Joining a remote room by alias and chatting both ways."""

    @defer.inlineCallbacks
    def setUp(self):
        self.network, self.servers = yield make_federated_homeservers(self, reactor, ["a.test", "b.test"])
        self.alice = InMemoryClient(self.servers["a.test"], reactor)
        self.bob = InMemoryClient(self.servers["b.test"], reactor)
        yield self.alice.register("alice")
        yield self.bob.register("bob")

    @defer.inlineCallbacks
    def test_join_by_alias_and_chat(self):
        """bob on b.test joins alice's room by its alias; messages cross both ways into /sync."""
        room_id = yield self.alice.create_room(preset="public_chat", room_alias_name="lobby", name="Lobby")
        joined = yield self.bob.join("#lobby:a.test")
        self.assertEqual(joined, room_id)
        yield self.alice.send_text(room_id, "hello from a")
        yield self.bob.send_text(room_id, "hello from b")

        @defer.inlineCallbacks
        def both_seen(client):
            sync = yield client.sync()
            bodies = timeline_bodies(sync, room_id)
            return "hello from a" in bodies and "hello from b" in bodies

        yield eventually(lambda: both_seen(self.alice))
        yield eventually(lambda: both_seen(self.bob))
        name = yield self.bob.get_state(room_id, "m.room.name")
        self.assertEqual(name, {"name": "Lobby"})

    @defer.inlineCallbacks
    def test_cut_link_refuses_join(self):
        """With the link cut, a remote join fails with a Matrix error, and works once healed."""
        room_id = yield self.alice.create_room(preset="public_chat", room_alias_name="cut")
        self.network.cut("a.test", "b.test")
        with self.assertRaises(ClientError):
            yield self.bob.join(room_id, via=["a.test"])
        self.network.heal()
        joined = yield self.bob.join(room_id, via=["a.test"])
        self.assertEqual(joined, room_id)


class RemoteProfileTests(unittest.TestCase):
    """Profiles of users on other servers are fetched over federation."""

    @defer.inlineCallbacks
    def setUp(self):
        self.network, self.servers = yield make_federated_homeservers(self, reactor, ["a.test", "b.test"])
        self.alice = InMemoryClient(self.servers["a.test"], reactor)
        self.bob = InMemoryClient(self.servers["b.test"], reactor)
        yield self.alice.register("alice")
        yield self.bob.register("bob")

    @defer.inlineCallbacks
    def test_profile_of_remote_user(self):
        """bob reads alice's display name from a.test; an unknown remote user is 404."""
        yield self.alice.request("PUT", "/_matrix/client/v3/profile/@alice:a.test/displayname", {"displayname": "Alice A"})
        profile = yield self.bob.request("GET", "/_matrix/client/v3/profile/@alice:a.test")
        self.assertEqual(profile.get("displayname"), "Alice A")
        with self.assertRaises(ClientError) as caught:
            yield self.bob.request("GET", "/_matrix/client/v3/profile/@nobody:a.test")
        self.assertEqual(caught.exception.code, 404)
        self.network.cut("a.test", "b.test")
        with self.assertRaises(ClientError) as caught:
            yield self.bob.request("GET", "/_matrix/client/v3/profile/@alice:a.test")
        self.assertEqual(caught.exception.code, 404)


class RemoteDirectoryTests(unittest.TestCase):
    """Clients list another server's room directory over federation."""

    @defer.inlineCallbacks
    def setUp(self):
        self.network, self.servers = yield make_federated_homeservers(
            self, reactor, ["a.test", "b.test"], overrides={"allow_public_rooms_over_federation": True}
        )
        self.alice = InMemoryClient(self.servers["a.test"], reactor)
        self.bob = InMemoryClient(self.servers["b.test"], reactor)
        yield self.alice.register("alice")
        yield self.bob.register("bob")

    @defer.inlineCallbacks
    def test_list_and_search_remote_directory(self):
        """bob lists a.test's public rooms (GET and filtered POST); an unreachable server is 404."""
        room_id = yield self.alice.create_room(visibility="public", name="Gardening", room_alias_name="garden")
        yield self.alice.create_room(visibility="public", name="Cooking")
        listed = yield self.bob.request("GET", "/_matrix/client/v3/publicRooms", query={"server": "a.test"})
        self.assertEqual(len(listed["chunk"]), 2)
        found = yield self.bob.request(
            "POST", "/_matrix/client/v3/publicRooms", {"filter": {"generic_search_term": "garden"}},
            query={"server": "a.test"},
        )
        self.assertEqual([r["room_id"] for r in found["chunk"]], [room_id])
        self.network.cut("a.test", "b.test")
        with self.assertRaises(ClientError) as caught:
            yield self.bob.request("GET", "/_matrix/client/v3/publicRooms", query={"server": "a.test"})
        self.assertEqual(caught.exception.code, 404)
