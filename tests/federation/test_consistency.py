"""Eventual consistency across outages and partitions: whole homeservers on the in-memory
network (:mod:`mxref.testing.network`) lose links, stop and restart on their own databases,
and must end up holding the same events and the same room state.

Spec: Server-Server API (https://spec.matrix.org/v1.19/server-server-api/), "Transactions",
"Retrieving events" (``get_missing_events``, ``backfill``) and "Room State Resolution".
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from mxref.events.stateres import resolve_state
from mxref.rooms.state import with_event_id
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


@defer.inlineCallbacks
def resolved_over(server, room_id, state_sets):
    """What :func:`mxref.events.stateres.resolve_state` gives over ``state_sets``, with the
    events read from ``server``'s store."""
    ids = set()
    for state in state_sets:
        ids.update(state.values())
    chain = yield server.store.events.get_auth_chain_ids(sorted(ids))
    stored = yield server.store.events.get_events(sorted(ids | set(chain)), allow_rejected=True)
    events = {event_id: with_event_id(e) for event_id, e in stored.items()}
    rejected = {event_id for event_id, e in stored.items() if e.rejected_reason}
    version = yield server.store.rooms.get_room_version(room_id)
    return resolve_state(version, state_sets, events, rejected=rejected)


@defer.inlineCallbacks
def room_dag(server, room_id):
    """The IDs of every event reachable from the room's forward extremities on ``server``."""
    extremities = yield server.store.events.get_forward_extremities(room_id)
    ids = yield server.store.events.get_backfill_ids(room_id, [e for e, _ in extremities], 100000)
    return set(ids)


class PartitionTests(ThreeServerSetup, unittest.TestCase):
    """A 2-1 partition where both sides change the room's state, then heals."""

    timeout = 120

    @defer.inlineCallbacks
    def test_partition_heals_to_the_resolved_state(self):
        """a+b and c are cut apart; a bans dave and sets the topic, c raises dave's power and
        dave sets the topic; after healing every server holds the same events and the same
        current state, the state resolution of the two forks (dave banned, alice's topic)."""
        yield self.make_room()
        alice, carol = self.clients["a.test"], self.clients["c.test"]
        dave = InMemoryClient(self.servers["c.test"], reactor)
        yield dave.register("dave")
        yield dave.join(self.room_id, via=["a.test"])
        levels = yield alice.get_state(self.room_id, "m.room.power_levels")
        levels["users"][carol.user_id] = 50
        levels["state_default"] = 50
        levels["events"] = dict(levels.get("events", {}), **{"m.room.power_levels": 50, "m.room.topic": 50})
        yield alice.set_state(self.room_id, "m.room.power_levels", levels)
        yield self.settle()
        yield eventually(lambda: self.same_current_state(), timeout=20, interval=0.1)

        self.network.partition(["a.test", "b.test"], ["c.test"])
        yield alice.set_state(self.room_id, "m.room.topic", {"topic": "topic from a"})
        yield alice.membership_of(self.room_id, "ban", dave.user_id)
        yield self.clients["b.test"].send_text(self.room_id, "b during the partition")
        levels_c = dict(levels, users=dict(levels["users"], **{dave.user_id: 50}))
        yield carol.set_state(self.room_id, "m.room.power_levels", levels_c)
        yield dave.set_state(self.room_id, "m.room.topic", {"topic": "topic from dave"})
        yield carol.send_text(self.room_id, "c during the partition")
        yield self.settle(timeout=5)
        forks = []
        for name in ("a.test", "c.test"):
            forks.append((yield self.servers[name].store.events.get_current_state_ids(self.room_id)))
        self.assertNotEqual(forks[0], forks[1])

        self.network.heal()
        yield self.settle()
        # Each side builds on what it now holds, which merges the forks.
        yield alice.send_text(self.room_id, "a after healing")
        yield carol.send_text(self.room_id, "c after healing")
        yield self.settle()
        state = yield eventually(lambda: self.same_current_state(), timeout=30, interval=0.1)
        # Every server now holds both forks' events.
        expected = yield resolved_over(self.servers["b.test"], self.room_id, forks)
        for key in set(expected) | set(state):
            self.assertEqual(state.get(key), expected.get(key), key)
        member = yield self.servers["a.test"].store.events.get_event(state[("m.room.member", dave.user_id)])
        self.assertEqual(member.pdu["content"]["membership"], "ban")
        topic = yield self.servers["c.test"].store.events.get_event(state[("m.room.topic", "")])
        self.assertEqual(topic.pdu["content"]["topic"], "topic from a")
        yield eventually(lambda: self.same_events(), timeout=30, interval=0.2)

    @defer.inlineCallbacks
    def same_current_state(self):
        """The current state when every server has the same one, else ``None``."""
        states = []
        for server in self.servers.values():
            states.append((yield server.store.events.get_current_state_ids(self.room_id)))
        return states[0] if all(s == states[0] for s in states) else None

    @defer.inlineCallbacks
    def same_events(self):
        """Whether every server holds the same room DAG (accepted, soft-failed and rejected
        events alike: soft-failed ones are hidden from clients only where they failed)."""
        seen = []
        for server in self.servers.values():
            seen.append((yield room_dag(server, self.room_id)))
        return all(s == seen[0] for s in seen)


SERVERS = ("a.test", "b.test", "c.test")

#: One step of a schedule: send a message from a server, cut or heal a link, restart a server.
STEP = st.one_of(
    st.tuples(st.just("send"), st.sampled_from(SERVERS)),
    st.tuples(st.just("topic"), st.sampled_from(SERVERS)),
    st.tuples(st.just("cut"), st.sampled_from(SERVERS), st.sampled_from(SERVERS)),
    st.tuples(st.just("heal")),
    st.tuples(st.just("restart"), st.sampled_from(SERVERS)),
)


def drawn_schedules(count, max_steps):
    """``count`` schedules drawn by hypothesis (derandomized, so every run tries the same).

    The scenario needs the reactor, which hypothesis cannot wait for inside ``@given``, so the
    schedules are drawn first and run afterwards.
    """
    drawn = []

    @settings(max_examples=count, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(STEP, min_size=1, max_size=max_steps))
    def collect(schedule):
        drawn.append(schedule)

    collect()
    return drawn[:count]


class RandomScheduleTests(ThreeServerSetup, unittest.TestCase):
    """Random schedules of cuts, heals, messages, topic changes and restarts."""

    timeout = 120

    @defer.inlineCallbacks
    def test_random_schedules_converge(self):
        """Whatever the schedule, once every link is healed and each server has spoken, every
        server holds the same events and the same current state."""
        schedules = drawn_schedules(3, 6)
        self.assertTrue(schedules)
        for schedule in schedules:
            yield self.run_schedule(schedule)

    @defer.inlineCallbacks
    def run_schedule(self, schedule):
        yield self.make_room()
        levels = yield self.clients["a.test"].get_state(self.room_id, "m.room.power_levels")
        levels["events"] = dict(levels.get("events", {}), **{"m.room.topic": 0})
        yield self.clients["a.test"].set_state(self.room_id, "m.room.power_levels", levels)
        for number, step in enumerate(schedule):
            action = step[0]
            if action == "send":
                yield self.clients[step[1]].send_text(self.room_id, f"step {number} on {step[1]}")
            elif action == "topic":
                yield self.clients[step[1]].set_state(self.room_id, "m.room.topic", {"topic": f"topic {number}"})
            elif action == "cut" and step[1] != step[2]:
                self.network.cut(step[1], step[2])
            elif action == "heal":
                self.network.heal()
            elif action == "restart":
                yield self.restart(step[1])
            yield sleep(0.01)
        self.network.heal()
        yield self.settle()
        for name in SERVERS:
            yield self.clients[name].send_text(self.room_id, f"after {schedule!r} on {name}")
        yield self.settle()
        yield eventually(lambda: self.converged(), timeout=30, interval=0.1)

    @defer.inlineCallbacks
    def converged(self):
        """Whether every server has the same current state and the same room DAG."""
        wake_all(self.servers)
        states, dags = [], []
        for server in self.servers.values():
            states.append((yield server.store.events.get_current_state_ids(self.room_id)))
            dags.append((yield room_dag(server, self.room_id)))
        return all(s == states[0] for s in states) and all(d == dags[0] for d in dags)


class _HangingServer(Resource):
    """A federation server that never answers (until released) or answers garbage."""

    isLeaf = True

    def __init__(self, garbage=False):
        super().__init__()
        self.garbage = garbage
        self.waiting = []
        self.requests = 0

    def render(self, request):
        self.requests += 1
        if self.garbage:
            request.setResponseCode(200)
            return b"\x00 this is not JSON {"
        self.waiting.append(request)
        return NOT_DONE_YET

    def release(self):
        """Answer every held request (with an error), so nothing is left in flight."""
        waiting, self.waiting = self.waiting, []
        for request in waiting:
            if not request.finished and not getattr(request, "_disconnected", False):
                request.setResponseCode(500)
                request.write(b"{}")
                request.finish()


class BadServerTests(ThreeServerSetup, unittest.TestCase):
    """A server that hangs or answers garbage does not hold up the others."""

    timeout = 120

    @defer.inlineCallbacks
    def check_delivery_despite(self, bad):
        yield self.make_room()
        self.network.remove_server("c.test")
        self.network.add_server("c.test", {"federation": {"/_matrix": bad}})
        self.addCleanup(bad.release)
        alice, bob = self.clients["a.test"], self.clients["b.test"]
        sent = []
        started = reactor.seconds()
        for i in range(20):
            body = f"despite c {i}"
            yield alice.send_text(self.room_id, body)
            sent.append(body)

        @defer.inlineCallbacks
        def bob_has_all():
            got = yield sync_bodies(bob, self.room_id)
            return all(b in got for b in sent)

        yield eventually(bob_has_all, timeout=10, interval=0.05)
        self.assertLess(reactor.seconds() - started, 10)
        self.assertGreater(bad.requests, 0)
        # Bob's answers reach alice too, while c.test still misbehaves.
        yield bob.send_text(self.room_id, "bob replies")

        @defer.inlineCallbacks
        def alice_has_reply():
            return "bob replies" in (yield sync_bodies(alice, self.room_id))

        yield eventually(alice_has_reply, timeout=10, interval=0.05)
        bad.release()

    def test_hanging_server(self):
        """c.test accepts connections but never answers: b.test still gets every message at once."""
        return self.check_delivery_despite(_HangingServer())

    def test_garbage_server(self):
        """c.test answers every request with garbage: b.test still gets every message at once."""
        return self.check_delivery_despite(_HangingServer(garbage=True))


class NewcomerHistoryTests(unittest.TestCase):
    """A server joining a room late backfills its history for its users."""

    timeout = 60

    @defer.inlineCallbacks
    def test_new_server_pages_history_before_its_join(self):
        """bob's server joins after alice sent 60 messages; paging /messages back, bob sees all
        of them (shared history), fetched from a.test with /backfill, oldest first."""
        network, servers = yield make_federated_homeservers(self, reactor, ["a.test", "b.test"])
        alice = InMemoryClient(servers["a.test"], reactor)
        bob = InMemoryClient(servers["b.test"], reactor)
        yield alice.register("alice")
        yield bob.register("bob")
        room_id = yield alice.create_room(preset="public_chat")
        expected = [f"early {i}" for i in range(60)]
        for body in expected:
            yield alice.send_text(room_id, body)
        yield bob.join(room_id, via=["a.test"])
        before = len([r for r in network.requests if r[0] == "b.test" and "/backfill/" in r[3]])
        paged = bodies((yield all_messages(bob, room_id)))
        self.assertEqual(paged, expected)
        after = len([r for r in network.requests if r[0] == "b.test" and "/backfill/" in r[3]])
        self.assertGreater(after, before)
        # A second pass is served from what b.test now holds.
        self.assertEqual(bodies((yield all_messages(bob, room_id))), expected)
        again = len([r for r in network.requests if r[0] == "b.test" and "/backfill/" in r[3]])
        self.assertEqual(again, after)


class ReturnAnnouncementTests(ThreeServerSetup, unittest.TestCase):
    """A restarted server tells the others it is back."""

    timeout = 60

    @defer.inlineCallbacks
    def test_restarted_server_gets_its_backlog_before_the_retry_timer(self):
        """c.test (which had sent to a and b before) misses messages while down; on restart it
        gets them within a second or two, long before a.test's back-off would have retried."""
        yield self.make_room()
        yield self.clients["c.test"].send_text(self.room_id, "c before the outage")
        yield self.settle()
        old_c = self.servers["c.test"]
        yield stop_server(self, self.network, old_c)
        missed = []
        for i in range(3):
            missed.append((yield self.clients["a.test"].send_text(self.room_id, f"missed {i}")))
        yield self.servers["a.test"].federation_sender.idle()
        queue = self.servers["a.test"].federation_sender.queue("c.test")
        self.assertGreater(queue.retry_interval_ms, 2000)
        yield self.restart("c.test")
        restarted_at = reactor.seconds()

        @defer.inlineCallbacks
        def has_missed():
            # Read c.test's store: no client of c.test does anything that would reach a.test.
            held = yield self.servers["c.test"].store.events.have_events(missed)
            return set(missed) <= set(held)

        yield eventually(has_missed, timeout=10, interval=0.05)
        self.assertLess(reactor.seconds() - restarted_at, 2.0)


class HostileBackfillTests(unittest.TestCase):
    """A server answering /backfill with garbage cannot break or slow paging."""

    timeout = 60

    @defer.inlineCallbacks
    def test_garbage_backfill_answer(self):
        """a.test answers garbage once bob's server has joined: bob's /messages still answers
        with what b.test holds, and the unfillable gap is not asked about on the next page."""
        network, servers = yield make_federated_homeservers(self, reactor, ["a.test", "b.test"])
        alice = InMemoryClient(servers["a.test"], reactor)
        bob = InMemoryClient(servers["b.test"], reactor)
        yield alice.register("alice")
        yield bob.register("bob")
        room_id = yield alice.create_room(preset="public_chat")
        for i in range(5):
            yield alice.send_text(room_id, f"early {i}")
        yield bob.join(room_id, via=["a.test"])
        network.remove_server("a.test")
        network.add_server("a.test", {"federation": {"/_matrix": _HangingServer(garbage=True)}})

        def backfills():
            return len([r for r in network.requests if r[0] == "b.test" and "/backfill/" in r[3]])

        page = yield bob.messages(room_id, limit=50)
        self.assertEqual(bodies(page["chunk"]), [])
        self.assertEqual(backfills(), 1)
        page = yield bob.messages(room_id, limit=50)
        self.assertEqual(backfills(), 1)
        self.assertTrue(any(e["type"] == "m.room.member" for e in page["chunk"]))
