"""Tests for state resolution v1 (room version 1): depth and sha1 ordering, passes by type.

v1 starts from the states' union without the conflicting events, resolves power levels,
join rules and member conflicts in turn (ascending depth, then descending sha1 of the event
ID; take the first, then each next one while it passes auth, stopping at the first failure),
then picks for every other key the deepest event with the lowest sha1 that passes auth.
"""

import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from mxref.events.stateres import resolve_state
from tests.events.test_stateres import (
    ALICE,
    BOB,
    CHARLIE,
    EVELYN,
    JOIN_RULES_KEY,
    POWER_KEY,
    TOPIC_KEY,
    ZARA,
    member_key,
    random_room,
    shuffled_dict,
    standard_room,
)


def sha1(event_id):
    return hashlib.sha1(event_id.encode()).hexdigest()


class ResolutionV1Tests(unittest.TestCase):
    """Room version 1 scenarios."""

    def setUp(self):
        self.graph = standard_room("1")

    def messages(self, *names, prev):
        """A run of messages from Zara after ``prev``, to make a fork deeper."""
        for i, name in enumerate(names):
            self.graph.add(name, ZARA, "m.room.message", None, {"body": name},
                           prev=[prev] if i == 0 else None)

    def pl(self, name, sender, users, prev=None):
        return self.graph.add(name, sender, "m.room.power_levels", "", {"users": users}, prev=prev)

    def topic(self, name, sender, prev=None):
        return self.graph.add(name, sender, "m.room.topic", "", {"topic": name}, prev=prev)

    def test_conflicted_membership_is_missing_during_power_levels_pass(self):
        """Memberships in conflict are absent from R while power levels and members are resolved: Bob's edit and Alice's ban both fail."""
        graph = self.graph
        self.pl("PA", ALICE, {ALICE: 100, BOB: 50}, prev=["START"])
        graph.add("MA", ALICE, "m.room.member", ALICE, {"membership": "join"})
        graph.add("MB", ALICE, "m.room.member", BOB, {"membership": "ban"})
        self.pl("PB", BOB, {ALICE: 100, BOB: 50}, prev=["PA"])
        # PA (shallower) is taken; PB, deeper, is checked against R, which holds no
        # membership for Bob yet (his key conflicts: IMB against MB), and is refused.
        resolved = graph.resolve("MB", "PB")
        self.assertEqual(resolved[POWER_KEY], "PA")
        # In the member pass, Alice's own membership conflicts too (IMA against MA), so
        # R has none for her and her ban of Bob is refused: one of v1's known resets.
        self.assertEqual(resolved[member_key(BOB)], "IMB")
        self.assertEqual(resolved[member_key(ALICE)], "MA")

    def test_deeper_power_levels_win_when_allowed(self):
        """Of two allowed power levels events, the deeper one wins, whatever the senders' power."""
        self.pl("PA", ALICE, {ALICE: 100, BOB: 50}, prev=["START"])
        self.pl("PC", ALICE, {ALICE: 100, BOB: 50, CHARLIE: 30})
        self.messages("M1", "M2", prev="PA")
        self.pl("PB", BOB, {ALICE: 100, BOB: 50, CHARLIE: 10})
        self.assertEqual(self.graph.resolve("PC", "PB")[POWER_KEY], "PB")
        self.assertEqual(self.graph.resolve("PB", "PC")[POWER_KEY], "PB")

    def test_power_levels_stop_at_first_refusal(self):
        """A refused power levels event ends the pass, even if a deeper one would be allowed."""
        self.pl("PLOW", ALICE, {ALICE: 100, BOB: 0}, prev=["START"])
        self.pl("PAM", ALICE, {ALICE: 100, BOB: 50}, prev=["START"])
        self.pl("PMID", BOB, {ALICE: 100, BOB: 50, CHARLIE: 10})
        self.messages("M1", "M2", prev="START")
        self.pl("PHIGH", ALICE, {ALICE: 100, CHARLIE: 20})
        depths = {n: self.graph.events[self.graph.id(n)]["depth"] for n in ("PLOW", "PMID", "PHIGH")}
        self.assertLess(depths["PLOW"], depths["PMID"])
        self.assertLess(depths["PMID"], depths["PHIGH"])
        resolved = self.graph.resolve("PLOW", "PMID", "PHIGH")
        self.assertEqual(resolved[POWER_KEY], "PLOW")

    def test_equal_depth_ordered_by_descending_sha1(self):
        """Between power levels events of equal depth, the one with the smaller sha1 is applied last and wins."""
        self.pl("PX", ALICE, {ALICE: 100, BOB: 10}, prev=["START"])
        self.pl("PY", ALICE, {ALICE: 100, BOB: 20}, prev=["START"])
        expected = min(("PX", "PY"), key=lambda n: sha1(self.graph.id(n)))
        self.assertEqual(self.graph.resolve("PX", "PY")[POWER_KEY], expected)
        self.assertEqual(self.graph.resolve("PY", "PX")[POWER_KEY], expected)

    def test_other_conflicts_pick_deepest_allowed(self):
        """For a topic, the deepest event wins, unless the resolved power levels refuse it."""
        graph = self.graph
        # Alice's fork: two messages, then she demotes Bob, then sets the topic.
        self.messages("M1", "M2", prev="START")
        self.pl("PA2", ALICE, {ALICE: 100, BOB: 0})
        self.topic("T1", ALICE)
        # Bob's fork: promoted early, several messages, then his (deeper) topic.
        self.pl("PB", ALICE, {ALICE: 100, BOB: 50}, prev=["START"])
        self.messages("M3", "M4", "M5", prev="PB")
        self.topic("TB", BOB)
        self.assertGreater(graph.events[graph.id("TB")]["depth"], graph.events[graph.id("T1")]["depth"])
        resolved = graph.resolve("T1", "TB")
        self.assertEqual(resolved[POWER_KEY], "PA2")
        self.assertEqual(resolved[TOPIC_KEY], "T1")
        # Without the demotion, Bob's deeper topic wins.
        self.topic("TA", ALICE, prev=["START"])
        self.assertEqual(graph.resolve("TA", "TB")[TOPIC_KEY], "TB")

    def test_no_allowed_topic_keeps_the_shallowest(self):
        """When no conflicting topic passes auth, the shallowest one is kept (the spec is silent; Synapse does this)."""
        graph = self.graph
        self.pl("PA", ALICE, {ALICE: 100, BOB: 50}, prev=["START"])
        self.topic("TB1", BOB)
        self.pl("PA2", ALICE, {ALICE: 100, BOB: 0})
        self.messages("M1", "M2", prev="PA")
        self.topic("TB2", BOB)
        self.assertGreater(graph.events[graph.id("TB2")]["depth"],
                           graph.events[graph.id("TB1")]["depth"])
        resolved = graph.resolve("PA2", "TB2")
        self.assertEqual(resolved[POWER_KEY], "PA2")  # Bob has 0: neither topic passes
        self.assertEqual(resolved[TOPIC_KEY], "TB1")

    def test_equal_depth_topics_lowest_sha1(self):
        """Of two allowed topics at the same depth, the one with the lower sha1 wins."""
        self.topic("TX", ALICE, prev=["START"])
        self.topic("TY", ALICE, prev=["START"])
        expected = min(("TX", "TY"), key=lambda n: sha1(self.graph.id(n)))
        self.assertEqual(self.graph.resolve("TX", "TY")[TOPIC_KEY], expected)

    def test_key_in_one_state_only_is_not_a_conflict(self):
        """v1 keeps a join present in only one fork even though the other fork made the room invite-only."""
        self.graph.add("JR", ALICE, "m.room.join_rules", "", {"join_rule": "invite"}, prev=["START"])
        self.graph.add("ME", EVELYN, "m.room.member", EVELYN, {"membership": "join"},
                       prev=["START"])
        resolved = self.graph.resolve("JR", "ME")
        self.assertEqual(resolved[JOIN_RULES_KEY], "JR")
        self.assertEqual(resolved[member_key(EVELYN)], "ME")  # v2 drops this join

    def test_unconflicted_state_unchanged(self):
        """States that agree resolve to themselves; the empty list resolves to nothing."""
        state = self.graph.state_ids("START")
        self.assertEqual(resolve_state("1", [state, dict(state)], self.graph.events), state)
        self.assertEqual(resolve_state("1", [], self.graph.events), {})



class PropertyV1Tests(unittest.TestCase):
    """Properties of v1 resolutions on random room version 1 rooms."""

    @settings(max_examples=30, deadline=None)
    @given(seed=st.integers(0, 10**6), order_seed=st.integers(0, 10**6))
    def test_order_of_state_sets_and_dicts_does_not_matter(self, seed, order_seed):
        """Reordering the states, or the entries of any dict, never changes the resolution."""
        graph, tips = random_room(seed, "1")
        state_sets = [graph.state_ids(t) for t in tips]
        expected = resolve_state("1", state_sets, graph.events)
        rng = random.Random(order_seed)
        reordered = [shuffled_dict(s, rng) for s in state_sets]
        rng.shuffle(reordered)
        self.assertEqual(resolve_state("1", reordered, shuffled_dict(graph.events, rng)), expected)

    @settings(max_examples=20, deadline=None)
    @given(seed=st.integers(0, 10**6))
    def test_identical_states_resolve_to_themselves(self, seed):
        """Copies of one state resolve to that state."""
        graph, tips = random_room(seed, "1")
        for tip in tips:
            state = graph.state_ids(tip)
            self.assertEqual(resolve_state("1", [state, dict(state)], graph.events), state)
