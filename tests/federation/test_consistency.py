"""Eventual consistency across outages and partitions: whole homeservers on the in-memory
network (:mod:`mxref.testing.network`) lose links, stop and restart on their own databases,
and must end up holding the same events and the same room state.

Spec: Server-Server API (https://spec.matrix.org/v1.19/server-server-api/), "Transactions",
"Retrieving events" (``get_missing_events``, ``backfill``) and "Room State Resolution".
"""

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from mxref.testing.client import InMemoryClient
from mxref.testing.homeserver import make_federated_homeservers, make_test_homeserver
from tests.federation.test_in_memory_federation import eventually


def sleep(seconds):
    """A Deferred firing after ``seconds`` of real time."""
    return task.deferLater(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def stop_server(testcase, network, homeserver):
    """Take a server off the network, stop its services and close its database."""
    network.remove_server(homeserver.server_name)
    for service in homeserver.services:
        if service.running:
            yield service.stopService()
    homeserver.database.close()


@defer.inlineCallbacks
def restart_server(testcase, network, homeserver):
    """A new homeserver for the same name on the same data directory, back on the network."""
    restarted = yield make_test_homeserver(
        testcase, reactor, server_name=homeserver.server_name, data_dir=homeserver.data_dir,
        federation_agent=network.agent_for(homeserver.server_name),
    )
    network.add_server(homeserver.server_name, restarted.resources)
    return restarted


def wake_all(servers):
    """Every server retries every other server now (as inbound traffic would make it do)."""
    for server in servers.values():
        for other in servers:
            server.federation_sender.wake_destination(other)


@defer.inlineCallbacks
def all_messages(client, room_id):
    """Every event of a room, oldest first, by paging ``/messages`` backwards to the start."""
    events = []
    token = None
    while True:
        page = yield client.messages(room_id, direction="b", limit=100, from_token=token)
        chunk = page.get("chunk", [])
        events.extend(chunk)
        if "end" not in page or page["end"] == token:
            break
        token = page["end"]
    events.reverse()
    return events


def bodies(events):
    """The bodies of the text messages among ``events``, in order."""
    return [e["content"].get("body") for e in events if e["type"] == "m.room.message"]


@defer.inlineCallbacks
def sync_bodies(client, room_id):
    """Message bodies of a room in a fresh full ``/sync`` of ``client`` (a large timeline)."""
    sync = yield client.sync(filter='{"room":{"timeline":{"limit":1000}}}')
    room = sync["rooms"]["join"].get(room_id, {})
    return bodies(room.get("timeline", {}).get("events", []))


class ThreeServerSetup:
    """alice on a.test creates a public room; bob (b.test) and carol (c.test) join it."""

    @defer.inlineCallbacks
    def make_room(self):
        self.network, self.servers = yield make_federated_homeservers(self, reactor, ["a.test", "b.test", "c.test"])
        self.clients = {}
        for name, localpart in (("a.test", "alice"), ("b.test", "bob"), ("c.test", "carol")):
            client = InMemoryClient(self.servers[name], reactor)
            yield client.register(localpart)
            self.clients[name] = client
        alice = self.clients["a.test"]
        self.room_id = yield alice.create_room(preset="public_chat", room_alias_name="consistency")
        for name in ("b.test", "c.test"):
            yield self.clients[name].join(self.room_id, via=["a.test"])
        yield self.settle()

    @defer.inlineCallbacks
    def settle(self, timeout=30.0):
        """Wake every queue and wait until every server's queues are idle."""
        deadline = reactor.seconds() + timeout
        while reactor.seconds() < deadline:
            wake_all(self.servers)
            for server in self.servers.values():
                yield server.federation_sender.idle()
            yield sleep(0.05)
            busy = [s for s in self.servers.values() if any(q._running for q in s.federation_sender._queues.values())]
            if not busy:
                return

    @defer.inlineCallbacks
    def restart(self, name):
        """Stop ``name`` and start it again on its database."""
        old = self.servers[name]
        yield stop_server(self, self.network, old)
        self.servers[name] = yield restart_server(self, self.network, old)
        client = self.clients[name]
        self.clients[name] = InMemoryClient(self.servers[name], reactor, client.access_token, client.user_id,
                                            client.device_id)


class OfflineServerTests(ThreeServerSetup, unittest.TestCase):
    """A server that was offline catches up when it returns."""

    timeout = 120

    @defer.inlineCallbacks
    def test_offline_server_receives_everything_in_order(self):
        """c.test is down while a and b exchange 200 messages; after its restart carol sees all
        of them, in the order they were sent, in /sync and /messages."""
        yield self.make_room()
        old_c = self.servers["c.test"]
        yield stop_server(self, self.network, old_c)
        expected = []
        for i in range(200):
            name = "a.test" if i % 2 == 0 else "b.test"
            body = f"m{i:03d} from {name}"
            yield self.clients[name].send_text(self.room_id, body)
            expected.append(body)
        self.servers["c.test"] = yield restart_server(self, self.network, old_c)
        carol_old = self.clients["c.test"]
        carol = InMemoryClient(self.servers["c.test"], reactor, carol_old.access_token, carol_old.user_id,
                               carol_old.device_id)
        self.clients["c.test"] = carol
        wake_all(self.servers)
        expected_set = set(expected)

        @defer.inlineCallbacks
        def caught_up():
            got = yield sync_bodies(carol, self.room_id)
            return expected[-1] in got or expected[-2] in got

        yield eventually(caught_up, timeout=30, interval=0.2)
        yield self.servers["c.test"].federation_sender.idle()
        for server in self.servers.values():
            yield server.federation_sender.idle()
        got_sync = [b for b in (yield sync_bodies(carol, self.room_id)) if b in expected_set]
        self.assert_in_send_order(got_sync)
        paged = bodies((yield all_messages(carol, self.room_id)))
        self.assertEqual(sorted(paged), sorted(expected))
        self.assert_in_send_order(paged)

    def assert_in_send_order(self, got):
        """Each server's messages appear in the order its user sent them."""
        for name in ("a.test", "b.test"):
            mine = [b for b in got if b.endswith(name)]
            self.assertEqual(mine, sorted(mine))
