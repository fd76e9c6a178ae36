"""Tests for state resolution v2.1 (room version 12, MSC4297): the two state resets it avoids.

v2.1 differs from v2 in two ways: the first iterative auth checks start from an empty state
map, and the full conflicted set includes the conflicted state subgraph. Each scenario below
is resolved in room version 11 (v2), where the room's state resets, and in room version 12
(v2.1), where it does not. In both, one state set is outdated, as when a server learnt the
room's state from a faulty or partial ``/state`` response.
"""

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from mxref.events.stateres import (
    auth_chain,
    conflicted_state_subgraph,
    resolve_state,
    unconflicted_and_conflicted,
)
from tests.events.test_stateres import (
    ALICE,
    BOB,
    CHARLIE,
    EVELYN,
    JOIN_RULES_KEY,
    POWER_KEY,
    TOPIC_KEY,
    ScenarioMixin,
    member_key,
    mixed_states,
    power_levels_content,
    random_room,
    shuffled_dict,
    standard_room,
)


def join_rules_reset_room(room_version):
    """Problem A of MSC4297: Alice changes the join rules twice, Evelyn joins, Alice leaves.

    Returns the graph and two state sets: the true state after Alice's leave, and the same
    state with the older join rules event (as a faulty ``/state`` response would give).
    """
    graph = standard_room(room_version)
    graph.add("JR1", ALICE, "m.room.join_rules", "", {"join_rule": "invite"}, prev=["START"])
    graph.add("JR2", ALICE, "m.room.join_rules", "", {"join_rule": "public"})
    graph.add("EJ", EVELYN, "m.room.member", EVELYN, {"membership": "join"})
    graph.add("AL", ALICE, "m.room.member", ALICE, {"membership": "leave"})
    true_state = graph.state_ids("AL")
    outdated = {**true_state, JOIN_RULES_KEY: graph.id("JR1")}
    return graph, [true_state, outdated]


def promotion_chain_room(room_version):
    """Problem B of MSC4297: Alice promotes Bob, Bob promotes Charlie, Charlie sets the topic.

    Returns the graph and two state sets: the true state after Charlie's topic, and the same
    state with the room's first power levels event instead of Bob's.
    """
    graph = standard_room(room_version)
    version = graph.version
    graph.add("PA", ALICE, "m.room.power_levels", "",
              power_levels_content(version, {ALICE: 100, BOB: 50}), prev=["START"])
    graph.add("PB", BOB, "m.room.power_levels", "",
              power_levels_content(version, {ALICE: 100, BOB: 50, CHARLIE: 50}))
    graph.add("TC", CHARLIE, "m.room.topic", "", {"topic": "Charlie's"})
    true_state = graph.state_ids("TC")
    outdated = {**true_state, POWER_KEY: graph.id("IPOWER")}
    return graph, [true_state, outdated]


class StateResetTests(unittest.TestCase):
    """The state resets of MSC4297 happen in room version 11 and not in 12."""

    def test_join_rules_reset_in_v2(self):
        """v2: both join rules events fail against the unconflicted "Alice left", so the room loses its join rules."""
        graph, state_sets = join_rules_reset_room("11")
        resolved = graph.named(resolve_state("11", state_sets, graph.events))
        self.assertNotIn(JOIN_RULES_KEY, resolved)
        self.assertEqual(resolved[member_key(ALICE)], "AL")

    def test_join_rules_kept_in_v21(self):
        """v2.1: replayed from an empty map, both join rules events pass and the newer one stays."""
        graph, state_sets = join_rules_reset_room("12")
        resolved = graph.named(resolve_state("12", state_sets, graph.events))
        self.assertEqual(resolved[JOIN_RULES_KEY], "JR2")
        self.assertEqual(resolved[member_key(ALICE)], "AL")
        self.assertEqual(resolved[member_key(EVELYN)], "EJ")

    def test_promotions_reset_in_v2(self):
        """v2: Bob's promotion of Charlie is replayed without Alice's promotion of Bob, and is refused."""
        graph, state_sets = promotion_chain_room("11")
        resolved = graph.named(resolve_state("11", state_sets, graph.events))
        self.assertEqual(resolved[POWER_KEY], "IPOWER")
        self.assertEqual(resolved[TOPIC_KEY], "TC")  # unconflicted, so kept regardless

    def test_promotions_kept_in_v21(self):
        """v2.1: the conflicted state subgraph brings in Alice's promotion of Bob, so Bob's stands."""
        graph, state_sets = promotion_chain_room("12")
        resolved = graph.named(resolve_state("12", state_sets, graph.events))
        self.assertEqual(resolved[POWER_KEY], "PB")
        self.assertEqual(resolved[TOPIC_KEY], "TC")

    def test_v21_result_independent_of_order(self):
        """Listing the outdated state first gives the same v2.1 resolution."""
        for build in (join_rules_reset_room, promotion_chain_room):
            graph, state_sets = build("12")
            self.assertEqual(
                resolve_state("12", state_sets, graph.events),
                resolve_state("12", state_sets[::-1], graph.events),
            )


class ConflictedStateSubgraphTests(unittest.TestCase):
    """The conflicted state subgraph: every auth path between two conflicted events."""

    def test_path_between_conflicted_events(self):
        """Between Bob's power levels and the first ones lie Alice's promotion, Bob's join and the join rules it cites."""
        graph, _ = promotion_chain_room("12")
        subgraph = conflicted_state_subgraph({graph.id("PB"), graph.id("IPOWER")}, graph.events)
        # PB -> PA -> IPOWER, PB -> IMB -> IPOWER and PB -> IMB -> IJR -> IPOWER. Alice's
        # join (cited by PA) and Charlie's join lead to no conflicted event.
        self.assertEqual(
            {graph.names[e] for e in subgraph}, {"PB", "PA", "IMB", "IJR", "IPOWER"}
        )

    def test_unrelated_conflicted_events(self):
        """Conflicted events with no auth path between them make a subgraph of just themselves."""
        graph, _ = join_rules_reset_room("12")
        subgraph = conflicted_state_subgraph({graph.id("JR1"), graph.id("JR2")}, graph.events)
        self.assertEqual({graph.names[e] for e in subgraph}, {"JR1", "JR2"})

    def test_single_conflicted_event(self):
        """One conflicted event is its own subgraph; an unknown ID is ignored."""
        graph, _ = join_rules_reset_room("12")
        subgraph = conflicted_state_subgraph({graph.id("JR2"), "$unknown"}, graph.events)
        self.assertEqual(subgraph, {graph.id("JR2")})

    def test_long_chain_is_replayed(self):
        """5,000 power levels events between an outdated and the current one are all replayed."""
        graph = standard_room("12")
        previous = "START"
        for i in range(5000):
            users = {BOB: 50} if i % 2 == 0 else {BOB: 0, CHARLIE: 50}
            graph.add(f"P{i}", ALICE, "m.room.power_levels", "", {"users": users}, prev=[previous])
            previous = f"P{i}"
        graph.add("TC", CHARLIE, "m.room.topic", "", {"topic": "c"})
        subgraph = conflicted_state_subgraph({graph.id("P0"), graph.id("P4999")}, graph.events)
        self.assertEqual(len(subgraph), 5000)
        true_state = graph.state_ids("TC")
        outdated = {**true_state, POWER_KEY: graph.id("P0")}
        resolved = graph.named(resolve_state("12", [outdated, true_state], graph.events))
        self.assertEqual(resolved[POWER_KEY], "P4999")


class ScenarioV12Tests(ScenarioMixin, unittest.TestCase):
    """The classic fork scenarios give the same answers in room version 12."""

    room_version = "12"


def literal_subgraph(conflicted, events):
    """The conflicted state subgraph as the spec words it: the events on auth paths
    between two conflicted events, endpoints included."""
    conflicted = {c for c in conflicted if c in events}
    below = {c: auth_chain(c, events) | {c} for c in conflicted}
    subgraph = set(conflicted)
    for start in conflicted:
        for event_id in below[start]:
            reachable = auth_chain(event_id, events) | {event_id}
            if event_id != start and reachable & conflicted:
                subgraph.add(event_id)
    return subgraph


class PropertyV12Tests(unittest.TestCase):
    """Properties of v2.1 resolutions on random room version 12 rooms."""

    @settings(max_examples=40, deadline=None)
    @given(seed=st.integers(0, 10**6), mix_seed=st.integers(0, 10**6))
    def test_subgraph_matches_the_spec_wording(self, seed, mix_seed):
        """The two-walk conflicted state subgraph equals the all-paths definition."""
        graph, tips = random_room(seed, "12")
        state_sets = mixed_states(graph, tips, mix_seed)
        _, conflicted = unconflicted_and_conflicted(state_sets)
        self.assertEqual(
            conflicted_state_subgraph(conflicted, graph.events),
            literal_subgraph(conflicted, graph.events),
        )

    @settings(max_examples=30, deadline=None)
    @given(seed=st.integers(0, 10**6), mix_seed=st.integers(0, 10**6))
    def test_mixed_states_order_does_not_matter(self, seed, mix_seed):
        """Even states patched from older ones resolve the same in any order."""
        graph, tips = random_room(seed, "12")
        state_sets = mixed_states(graph, tips, mix_seed)
        expected = resolve_state("12", state_sets, graph.events)
        self.assertEqual(resolve_state("12", state_sets[::-1], graph.events), expected)

    @settings(max_examples=30, deadline=None)
    @given(seed=st.integers(0, 10**6), order_seed=st.integers(0, 10**6))
    def test_order_of_state_sets_and_dicts_does_not_matter(self, seed, order_seed):
        """Reordering the states, or the entries of any dict, never changes the resolution."""
        graph, tips = random_room(seed, "12")
        state_sets = [graph.state_ids(t) for t in tips]
        expected = resolve_state("12", state_sets, graph.events)
        rng = random.Random(order_seed)
        reordered = [shuffled_dict(s, rng) for s in state_sets]
        rng.shuffle(reordered)
        self.assertEqual(resolve_state("12", reordered, shuffled_dict(graph.events, rng)), expected)

    @settings(max_examples=30, deadline=None)
    @given(seed=st.integers(0, 10**6), copies=st.integers(1, 3))
    def test_identical_states_resolve_to_themselves(self, seed, copies):
        """One state, or several copies of the same state, resolves to that state."""
        graph, tips = random_room(seed, "12")
        for tip in tips:
            state = graph.state_ids(tip)
            self.assertEqual(resolve_state("12", [state] * copies, graph.events), state)

    @settings(max_examples=20, deadline=None)
    @given(seed=st.integers(0, 10**6))
    def test_resolution_keeps_unconflicted_state(self, seed):
        """Every key on which all states agree keeps its value, though replay starts empty."""
        graph, tips = random_room(seed, "12")
        state_sets = [graph.state_ids(t) for t in tips]
        unconflicted, _ = unconflicted_and_conflicted(state_sets)
        resolved = resolve_state("12", state_sets, graph.events)
        self.assertEqual({k: resolved[k] for k in unconflicted}, unconflicted)
