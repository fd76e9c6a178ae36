"""State resolution: merge the room states of several forks of the event graph into one.

When an event has several ``prev_events``, the state before it is the *resolution* of the
states after each of them. This module implements the three algorithms of the spec:

* **v2** (room versions 2 to 11): "State resolution" in
  https://spec.matrix.org/v1.19/rooms/v2/#state-resolution (the text shared by v2-v11).
* **v2.1** (room version 12): https://spec.matrix.org/v1.19/rooms/v12/#state-resolution
  (MSC4297). Two changes: step 2 starts from an *empty* state map, and the *full
  conflicted set* also holds the *conflicted state subgraph*.
* **v1** (room version 1): https://spec.matrix.org/v1.19/rooms/v1/#state-resolution.

The building blocks carry the spec's names (:func:`unconflicted_and_conflicted`,
:func:`auth_chain`, :func:`auth_difference`, :func:`conflicted_state_subgraph`,
:func:`reverse_topological_power_ordering`, :func:`mainline_ordering`,
:func:`iterative_auth_checks`) so that :func:`resolve_state` reads like the algorithm.

Inputs are plain data. A *state set* maps ``(type, state_key)`` to an event ID. ``events``
maps event IDs to event dicts in their federation (PDU) form and must hold every event of
the state sets and of their auth chains. Nothing here does I/O, and every graph walk is
iterative, so a long auth chain cannot exhaust Python's recursion limit.

Where we part from the letter of the spec text, and why. State resolution only works if
every server computes the same answer, and on two points the text says something that no
deployed server does; mxref does what they do (Synapse and ruma alike), and both points are
marked [like deployed servers] in the code. With them, mxref's results equal Synapse 1.163's
on its own test scenarios, a 10,000-member benchmark room and about 2,500 random forked
rooms (v1, v2, v10, v11, v12, some with states patched from older ones); read literally,
about 1 in 100 of those rooms resolves differently.

* Auth difference. The text's auth chain of an event excludes the event, so an
  unconflicted event that one state's events cite and another's do not would be in the
  auth difference, and be replayed. Deployed servers count each state's own events in its
  auth chains, so unconflicted events are never in it. :func:`auth_difference` computes the
  text's definition; :func:`resolve_state` removes the unconflicted events from it.
  (``test_unconflicted_event_in_one_forks_auth_chains`` shows a case where it matters.)
* Step 1 adds "the events in the auth chain of P which also belong to the full conflicted
  set". Deployed servers walk from P through auth events *inside* the full conflicted set
  only, so an event of that set reachable only through events outside it is left for
  step 3.

Other readings worth knowing:

* Iterative auth checks: the state's entry for a key wins; the event's own auth events
  only fill keys the state lacks ("if a key ... is not present in the state, then the
  appropriate state event from the event's auth_events is used if the auth event is not
  rejected").
* Reverse topological power ordering: the DAG is formed by the ``auth_events`` links
  *among the events being sorted*; the sender's power level is read from the event's own
  auth events (plus, in room version 12, the create event that nobody cites).
* Rejected events (the ``rejected`` argument: rejected against their own auth events) are
  never applied and never fill a key from ``auth_events``. The spec says they cannot be in
  a state set; if one is, an unconflicted entry is still restored by step 5 as written.
* v1 leaves two things open: the order of the keys within one pass (we resolve each key
  of a pass against R as it stood when the pass began, so the order cannot matter), and
  what to pick when no event of an "other" conflict passes auth (we keep the last of the
  order, the shallowest, as Synapse does).
"""

import hashlib
import heapq
import itertools
import math

from mxref.errors import AuthError
from mxref.events.authrules import (
    auth_types_for_event,
    check_auth,
    get_user_power_level,
    is_power_event,
)
from mxref.events.room_versions import StateResolution, get_room_version

_CREATE = ("m.room.create", "")
_POWER_LEVELS = ("m.room.power_levels", "")

#: Event types resolved in turn, before every other type, by the v1 algorithm.
_V1_AUTH_TYPES_IN_ORDER = ("m.room.power_levels", "m.room.join_rules", "m.room.member")


def auth_event_ids(event: dict) -> list:
    """The IDs of ``event``'s ``auth_events``, whatever the room version's event format.

    Room versions 1 and 2 list ``[event_id, {"sha256": ...}]`` pairs; later versions list
    plain event IDs.
    """
    references = event.get("auth_events") or []
    if not references or isinstance(references[0], str):
        return references  # v3 and later: already a list of IDs
    return [ref[0] for ref in references]


def state_key_of(event: dict) -> tuple:
    """The ``(type, state_key)`` pair an event occupies in the room state."""
    return (event["type"], event["state_key"])


def resolve_state(room_version, state_sets, events: dict, *, rejected=frozenset()) -> dict:
    """Resolve several room states into one, with the algorithm of ``room_version``.

    :param room_version: a :class:`~mxref.events.room_versions.RoomVersion` or its identifier.
    :param state_sets: the states to merge: an iterable of dicts mapping
        ``(type, state_key)`` to an event ID.
    :param events: event ID -> event dict (PDU form), holding every event named in the
        state sets and in their auth chains.
    :param rejected: IDs of events rejected against their own auth events. They are never
        applied and never used as a fallback auth event.
    :returns: the resolved state, a new dict ``(type, state_key)`` -> event ID. Synchronous.
    """
    room_version = get_room_version(room_version)
    state_sets = list(state_sets)
    if not state_sets:
        return {}
    if room_version.state_resolution is StateResolution.V1:
        return _resolve_v1(room_version, state_sets, events, frozenset(rejected))
    return _resolve_v2(room_version, state_sets, events, frozenset(rejected))


# --- Definitions shared by v2 and v2.1 -------------------------------------------------------


def unconflicted_and_conflicted(state_sets) -> tuple:
    """Split the states into the *unconflicted state map* and the *conflicted state set*.

    Spec (v2): a pair (K, V) is unconflicted when the key K is present in **every** state
    with the same value V; every other value is in the conflicted state set. (A key that is
    missing from some state is therefore conflicted.)

    :param state_sets: a list of dicts ``(type, state_key)`` -> event ID.
    :returns: ``(unconflicted, conflicted)``: a dict and a set of event IDs.
    """
    state_sets = list(state_sets)
    if not state_sets:
        return {}, set()
    unconflicted = state_sets[0]
    for other in state_sets[1:]:
        unconflicted = {k: v for k, v in unconflicted.items() if other.get(k) == v}
    unconflicted = dict(unconflicted)
    # An event ID names one event, so one key: an ID that is unconflicted somewhere is
    # unconflicted everywhere, and every other ID is conflicted.
    conflicted = set().union(*(state_set.values() for state_set in state_sets))
    conflicted.difference_update(unconflicted.values())
    return unconflicted, conflicted


def auth_chain(event_id: str, events: dict) -> set:
    """The *auth chain* of an event: its auth events, their auth events, and so on.

    The event itself is not part of its auth chain. Auth events missing from ``events``
    are left out (their ancestors cannot be found).

    :returns: a set of event IDs.
    """
    return _reachable_by_auth_events(auth_event_ids(events[event_id]), events)


def _reachable_by_auth_events(start_ids, events: dict, excluded=frozenset()) -> set:
    """Every event in ``events`` reachable from (and including) ``start_ids`` by auth edges.

    A walk does not enter (or go past) events in ``excluded``. Iterative depth-first search.
    """
    found = set()
    to_visit = [event_id for event_id in start_ids if event_id not in excluded]
    while to_visit:
        event_id = to_visit.pop()
        if event_id in found or event_id not in events:
            continue
        found.add(event_id)
        for parent_id in auth_event_ids(events[event_id]):
            if parent_id not in found and parent_id not in excluded:
                to_visit.append(parent_id)
    return found


def _full_auth_chain(event_ids, events: dict, excluded=frozenset()) -> set:
    """The union of the auth chains of ``event_ids`` (without those events themselves,
    unless one is in another's chain), not entering ``excluded``."""
    return _reachable_by_auth_events(_all_auth_event_ids(event_ids, events), events, excluded)


def _all_auth_event_ids(event_ids, events: dict) -> set:
    """The IDs cited in the ``auth_events`` of any of ``event_ids`` (a bulk auth_event_ids).

    Written for speed: this runs over every event of a large room's state.
    """
    references = list(
        itertools.chain.from_iterable(
            events[event_id].get("auth_events") or () for event_id in event_ids if event_id in events
        )
    )
    if references and not isinstance(references[0], str):
        references = [reference[0] for reference in references]  # v1/v2 [id, hashes] pairs
    return set(references)


def auth_difference(state_sets, events: dict) -> set:
    """The *auth difference*: events in some but not all of the states' full auth chains.

    Spec: with C_i the union of the auth chains of the events of state S_i, the auth
    difference is (C_1 u C_2 u ...) - (C_1 n C_2 n ...).

    The events common to every state (usually nearly all of them) have the same auth
    chain in every C_i, so that chain is walked once and neither counted nor re-entered
    when walking the events particular to each state.

    :returns: a set of event IDs.
    """
    value_sets = [set(state_set.values()) for state_set in state_sets]
    if not value_sets:
        return set()
    shared = set.intersection(*value_sets)
    in_every_chain = _full_auth_chain(shared, events)
    particular_chains = [
        _full_auth_chain(values - shared, events, excluded=in_every_chain)
        for values in value_sets
    ]
    return set.union(*particular_chains) - set.intersection(*particular_chains)


def conflicted_state_subgraph(conflicted_ids, events: dict) -> set:
    """The *conflicted state subgraph* (room version 12, MSC4297).

    Spec: following ``auth_events`` edges from an event of the conflicted state set may lead
    to another event of the conflicted state set; the union of all such paths between any
    pair of conflicted events, endpoints included, is the conflicted state subgraph.

    An event is on such a path when it is reachable from a conflicted event and a
    conflicted event is reachable from it. One walk down the auth edges from the conflicted
    events finds the first property and records the reverse edges; one walk up those
    reverse edges from the conflicted events finds the second.

    :param conflicted_ids: the conflicted state set (event IDs).
    :returns: a set of event IDs, including the conflicted events present in ``events``.
    """
    conflicted = {event_id for event_id in conflicted_ids if event_id in events}
    # Walk down: every event below a conflicted event, and who cites it.
    cited_by = {}
    visited = set()
    to_visit = list(conflicted)
    while to_visit:
        event_id = to_visit.pop()
        if event_id in visited:
            continue
        visited.add(event_id)
        for parent_id in auth_event_ids(events[event_id]):
            if parent_id in events:
                cited_by.setdefault(parent_id, []).append(event_id)
                if parent_id not in visited:
                    to_visit.append(parent_id)
    # Walk up from the conflicted events: everything found lies above a conflicted event
    # and (being in ``cited_by``'s range) below one.
    subgraph = set(conflicted)
    to_visit = list(conflicted)
    while to_visit:
        event_id = to_visit.pop()
        for child_id in cited_by.get(event_id, ()):
            if child_id not in subgraph:
                subgraph.add(child_id)
                to_visit.append(child_id)
    return subgraph


# --- Orderings --------------------------------------------------------------------------------


def _create_event_for(event: dict, events: dict):
    """In room version 12 the create event is never cited: its ID is ``$`` + the room ID's
    opaque part. Returns the create event dict, or None if it is not at hand."""
    room_id = event.get("room_id")
    if not room_id:
        return None
    return events.get("$" + room_id[1:])


def _sender_power_at_auth_events(event: dict, events: dict, room_version):
    """The power level of ``event``'s sender, looking at the event's own auth events.

    Room version 12 creators have infinite power (``math.inf``).
    """
    auth_state = {}
    for auth_id in auth_event_ids(event):
        auth_event = events.get(auth_id)
        if auth_event is not None:
            auth_state[state_key_of(auth_event)] = auth_event
    if room_version.room_id_from_create_event and _CREATE not in auth_state:
        create_event = _create_event_for(event, events)
        if create_event is not None:
            auth_state[_CREATE] = create_event
    return get_user_power_level(event["sender"], auth_state, room_version)


def reverse_topological_power_ordering(event_ids, events: dict, room_version) -> list:
    """Sort events by the *reverse topological power ordering*, earliest first.

    Spec: the lexicographically smallest topological ordering of the DAG formed by the
    events' auth events, found with Kahn's algorithm taking at each step the smallest
    candidate, where x < y when x's sender has the *greater* power level (each measured at
    the event's own ``auth_events``), then the smaller ``origin_server_ts``, then the
    smaller ``event_id``.

    The DAG is the one the auth edges form among ``event_ids`` themselves.

    :param room_version: a RoomVersion or its identifier.
    :returns: a list of event IDs.
    """
    room_version = get_room_version(room_version)
    members = set(event_ids)
    waiting_on = {}  # event ID -> number of its auth events in the set not yet emitted
    cited_by = {event_id: [] for event_id in members}
    for event_id in members:
        parents = {p for p in auth_event_ids(events[event_id]) if p in members}
        waiting_on[event_id] = len(parents)
        for parent_id in parents:
            cited_by[parent_id].append(event_id)

    def sort_key(event_id):
        event = events[event_id]
        power = _sender_power_at_auth_events(event, events, room_version)
        return (-power, event.get("origin_server_ts", 0), event_id)

    ready = [sort_key(event_id) for event_id, count in waiting_on.items() if count == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        event_id = heapq.heappop(ready)[-1]
        ordered.append(event_id)
        for child_id in cited_by[event_id]:
            waiting_on[child_id] -= 1
            if waiting_on[child_id] == 0:
                heapq.heappush(ready, sort_key(child_id))
    return ordered


def _power_levels_auth_event(event: dict, events: dict):
    """The ID of the ``m.room.power_levels`` event among ``event``'s auth events, or None."""
    for auth_id in auth_event_ids(event):
        auth_event = events.get(auth_id)
        if auth_event is not None and state_key_of(auth_event) == _POWER_LEVELS:
            return auth_id
    return None


def mainline_ordering(event_ids, power_levels_id, events: dict) -> list:
    """Sort events by the *mainline ordering* based on the power levels event ``power_levels_id``.

    Spec: the mainline of P is [P, P's power levels auth event, that event's, ...]. The
    *mainline position* of an event e is the index in that list of the first event met
    when following power levels auth events from e (e itself excluded); infinity if none
    is met. Events sort by **greater** mainline position first, then smaller
    ``origin_server_ts``, then smaller ``event_id``.

    :param power_levels_id: the power levels event of the partially resolved state, or
        None (then every mainline position is infinite).
    :returns: a list of event IDs.
    """
    position_of = {}  # power levels event ID -> mainline position, seeded with the mainline
    index = 0
    current = power_levels_id
    while current is not None and current not in position_of and current in events:
        position_of[current] = index
        index += 1
        current = _power_levels_auth_event(events[current], events)

    def position_through(first_power_levels_id):
        # Follow power levels auth events until one of known position; remember the path.
        path = []
        current = first_power_levels_id
        while current is not None and current not in position_of and current in events:
            path.append(current)
            current = _power_levels_auth_event(events[current], events)
        position = position_of.get(current, math.inf) if current is not None else math.inf
        for visited in path:
            position_of[visited] = position
        return position

    def sort_key(event_id):
        event = events[event_id]
        position = position_through(_power_levels_auth_event(event, events))
        return (-position, event.get("origin_server_ts", 0), event_id)

    return sorted(event_ids, key=sort_key)


# --- Iterative auth checks --------------------------------------------------------------------


def _auth_state_for(event: dict, state: dict, events: dict, room_version, rejected) -> dict:
    """The state an event is checked against during the iterative auth checks.

    Spec: the event is checked against the room state; "if a (event_type, state_key) key
    that is required for checking the authorisation rules is not present in the state,
    then the appropriate state event from the event's auth_events is used if the auth event
    is not rejected". So the state's entry wins, and the event's own auth events only fill
    in the keys the state lacks. In room version 12, where nothing cites the create event,
    the create event is added the same way.
    """
    own_auth_events = {}
    for auth_id in auth_event_ids(event):
        auth_event = events.get(auth_id)
        if auth_event is not None and auth_id not in rejected:
            own_auth_events[state_key_of(auth_event)] = auth_event
    needed = list(auth_types_for_event(event, room_version))
    if _CREATE not in needed:
        needed.append(_CREATE)
    auth_state = {}
    for key in needed:
        state_id = state.get(key)
        if state_id is not None and state_id not in rejected and state_id in events:
            auth_state[key] = events[state_id]
        elif key in own_auth_events:
            auth_state[key] = own_auth_events[key]
    if room_version.room_id_from_create_event and _CREATE not in auth_state:
        create_event = _create_event_for(event, events)
        if create_event is not None:
            auth_state[_CREATE] = create_event
    return auth_state


def iterative_auth_checks(
    room_version, event_ids, initial_state: dict, events: dict, rejected=frozenset()
) -> dict:
    """The *iterative auth checks algorithm*: apply each event that passes the auth rules.

    Spec: starting from ``initial_state``, for each event of the sorted list in turn, apply
    it (set its ``(type, state_key)`` entry) if the authorisation rules allow it against
    the state so far, else ignore it; keys the rules need that the state lacks come from
    the event's own non-rejected auth events (see :func:`_auth_state_for`).

    :param event_ids: the sorted list of event IDs.
    :param initial_state: dict ``(type, state_key)`` -> event ID; not modified.
    :param rejected: event IDs never applied nor used as fallback auth events.
    :returns: the new state, a dict ``(type, state_key)`` -> event ID.
    """
    room_version = get_room_version(room_version)
    state = dict(initial_state)
    for event_id in event_ids:
        if event_id in rejected:
            continue
        event = events[event_id]
        auth_state = _auth_state_for(event, state, events, room_version, rejected)
        try:
            check_auth(event, auth_state.values(), room_version)
        except AuthError:
            continue
        state[state_key_of(event)] = event_id
    return state


# --- State resolution v2 and v2.1 ------------------------------------------------------------


def _resolve_v2(room_version, state_sets, events, rejected) -> dict:
    """The v2 algorithm, with the v2.1 changes when the room version asks for them."""
    is_v2_1 = room_version.state_resolution is StateResolution.V2_1
    unconflicted, conflicted = unconflicted_and_conflicted(state_sets)
    if not conflicted:
        return unconflicted

    # The full conflicted set: conflicted state set u auth difference (u subgraph in v2.1).
    # [like deployed servers] The unconflicted events are left out of the auth difference.
    auth_diff = auth_difference(state_sets, events) - set(unconflicted.values())
    full_conflicted = conflicted | auth_diff
    if is_v2_1:
        full_conflicted |= conflicted_state_subgraph(conflicted, events)
    full_conflicted = {e for e in full_conflicted if e in events and e not in rejected}

    # Step 1: the power events, with the parts of their auth chains in the full conflicted
    # set, in reverse topological power ordering.
    power_events = {e for e in full_conflicted if is_power_event(events[e])}
    power_side = _with_auth_ancestors_inside(power_events, full_conflicted, events)
    power_ordered = reverse_topological_power_ordering(power_side, events, room_version)

    # Step 2: iterative auth checks from the unconflicted state map (v2) or empty (v2.1).
    partial = iterative_auth_checks(
        room_version, power_ordered, {} if is_v2_1 else unconflicted, events, rejected
    )

    # Steps 3 and 4: the other events, in mainline ordering based on the partial state's
    # power levels, checked on top of the partial state.
    others = mainline_ordering(full_conflicted - power_side, partial.get(_POWER_LEVELS), events)
    resolved = iterative_auth_checks(room_version, others, partial, events, rejected)

    # Step 5: the unconflicted state map has the last word.
    resolved.update(unconflicted)
    return resolved


def _with_auth_ancestors_inside(event_ids, allowed, events: dict) -> set:
    """``event_ids`` and the events of ``allowed`` reached from them by auth edges that never
    leave ``allowed``: step 1's enlargement [like deployed servers]."""
    found = set(event_ids)
    to_visit = list(found)
    while to_visit:
        for parent_id in auth_event_ids(events[to_visit.pop()]):
            if parent_id in allowed and parent_id not in found:
                found.add(parent_id)
                to_visit.append(parent_id)
    return found


# --- State resolution v1 ----------------------------------------------------------------------


def _v1_conflicts(state_sets) -> tuple:
    """Room version 1's split: a *conflict* is states having different event IDs for one key.

    Unlike v2, a key that only some states have is not a conflict.

    :returns: ``(unconflicted, conflicts)``: dict key -> event ID, and dict key -> set of IDs.
    """
    values_by_key = {}
    for state_set in state_sets:
        for key, event_id in state_set.items():
            values_by_key.setdefault(key, set()).add(event_id)
    unconflicted = {}
    conflicts = {}
    for key, event_ids in values_by_key.items():
        if len(event_ids) == 1:
            unconflicted[key] = next(iter(event_ids))
        else:
            conflicts[key] = event_ids
    return unconflicted, conflicts


def _sha1_hex(event_id: str) -> str:
    return hashlib.sha1(event_id.encode("utf-8")).hexdigest()


def _is_allowed_in(event: dict, state: dict, events: dict, room_version) -> bool:
    """Whether the auth rules allow ``event`` in the room state ``state`` (v1: no fallback)."""
    auth_state = [
        events[state[key]]
        for key in auth_types_for_event(event, room_version)
        if key in state and state[key] in events
    ]
    try:
        check_auth(event, auth_state, room_version)
    except AuthError:
        return False
    return True


def _v1_resolve_auth_conflict(event_ids, state, events, room_version) -> str:
    """Resolve one conflict between power levels, join rules or member events (v1).

    Spec: sort by ascending ``depth`` then descending ``sha1(event_id)``; take the first;
    then take each following event while the auth rules allow it in the state so far
    (with the taken events applied), and stop at the first refused one.
    """
    ordered = sorted(event_ids, key=lambda e: (-events[e]["depth"], _sha1_hex(e)))
    ordered.reverse()
    state = dict(state)
    chosen = ordered[0]
    for event_id in ordered[1:]:
        state[state_key_of(events[chosen])] = chosen
        if not _is_allowed_in(events[event_id], state, events, room_version):
            break
        chosen = event_id
    return chosen


def _v1_resolve_other_conflict(event_ids, state, events, room_version) -> str:
    """Resolve a conflict between events of other types (v1).

    Spec: pick the event with the highest ``depth`` and lowest ``sha1(event_id)`` that
    passes authentication in the state so far. [The spec does not say what happens when
    none passes; like Synapse, where v1 rooms live, we then keep the last event of that
    order (the shallowest), so that servers still agree.]
    """
    ordered = sorted(event_ids, key=lambda e: (-events[e]["depth"], _sha1_hex(e)))
    for event_id in ordered:
        if _is_allowed_in(events[event_id], state, events, room_version):
            return event_id
    return ordered[-1]


def _resolve_v1(room_version, state_sets, events, rejected) -> dict:
    """Room version 1's algorithm.

    R starts as the union of the states without the conflicting events. Conflicts are then
    resolved type by type: power levels, join rules, members, then everything else. Each
    conflict of a pass is resolved against R as it stood when the pass began (the spec
    gives no order among the keys of one pass, so none may matter); R takes the pass's
    results before the next pass.
    """
    resolved, conflicts = _v1_conflicts(state_sets)
    candidates = {}
    for key, event_ids in conflicts.items():
        usable = sorted(e for e in event_ids if e not in rejected and e in events)
        if usable:
            candidates[key] = usable
    for event_type in _V1_AUTH_TYPES_IN_ORDER:
        results = {
            key: _v1_resolve_auth_conflict(event_ids, resolved, events, room_version)
            for key, event_ids in candidates.items()
            if key[0] == event_type
        }
        resolved.update(results)
    results = {
        key: _v1_resolve_other_conflict(event_ids, resolved, events, room_version)
        for key, event_ids in candidates.items()
        if key[0] not in _V1_AUTH_TYPES_IN_ORDER
    }
    resolved.update(results)
    return resolved
