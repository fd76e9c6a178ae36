"""Fixtures for the receiver tests: our server's room services over SQLite, a remote server's
copy of a room that builds and signs events with its own key, a keyring holding both servers'
keys, and a federation client answering from the remote copy."""

from twisted.internet import defer

from mxref.errors import MatrixError, SignatureError
from mxref.events.builder import build_event
from mxref.events.hashing import compute_event_id, compute_reference_hash, encode_unpadded_base64
from mxref.events.room_versions import EventFormat, get_room_version
from mxref.events.signing import (
    generate_signing_key,
    get_verify_key,
    key_id_of,
    verify_event_signatures,
    verify_json,
)
from mxref.federation.acl import ServerAclChecker
from mxref.federation.receiver.pipeline import PduReceiver, reference_ids
from mxref.storage.records import RoomPosition
from tests.rooms.support import RoomServicesMixin

REMOTE = "remote.example"


class DictKeyring:
    """A keyring knowing a fixed set of keys: ``{server_name: signing_key}``."""

    def __init__(self, signing_keys):
        self.keys = {
            server: {key_id_of(key): get_verify_key(key)} for server, key in signing_keys.items()
        }

    def verify_json_for_server(self, server_name, obj, minimum_valid_until_ts=0):
        """Check a signed JSON object (request authentication) against the known keys."""
        for key_id in (obj.get("signatures") or {}).get(server_name, {}):
            verify_key = self.keys.get(server_name, {}).get(key_id)
            if verify_key is None:
                continue
            try:
                verify_json(obj, server_name, verify_key, key_id)
            except SignatureError as e:
                return defer.fail(e)
            return defer.succeed(None)
        return defer.fail(SignatureError(f"no known key of {server_name}"))

    def verify_event(self, event, room_version):
        """Check the event's signatures against the known keys (a Deferred)."""
        try:
            verify_event_signatures(
                event, room_version, lambda server, key_id: self.keys.get(server, {}).get(key_id)
            )
        except (SignatureError, MatrixError) as e:
            return defer.fail(e)
        return defer.succeed(None)


class RemoteRoom:
    """A remote server's copy of one room: its events, the state after each, and building
    new events signed with the remote key."""

    def __init__(self, room_id, room_version, server_name=REMOTE, signing_key=None):
        self.room_id = room_id
        self.room_version = room_version
        self.server_name = server_name
        self.signing_key = signing_key or generate_signing_key("r1")
        self.pdus = {}
        self.state_after = {}
        self.latest = None

    def add(self, event_id, pdu, state_before):
        """Record an event (ours or theirs) with the state before it."""
        self.pdus[event_id] = pdu
        state = dict(state_before)
        if "state_key" in pdu:
            state[(pdu["type"], pdu["state_key"])] = event_id
        self.state_after[event_id] = state
        self.latest = event_id

    def state_before(self, event_id):
        """The state before an event: the state after its (single) prev event."""
        prevs = reference_ids(self.pdus[event_id].get("prev_events"))
        return dict(self.state_after[prevs[0]]) if prevs else {}

    def build(self, sender, event_type, content, state_key=None, prev_ids=None, signing_key=None):
        """Build, sign and record an event on top of ``prev_ids`` (default: the latest).

        :returns: ``(event_id, pdu)``.
        """
        prev_ids = prev_ids or [self.latest]
        state = dict(self.state_after[prev_ids[0]])
        current = {key: dict(self.pdus[i], event_id=i) for key, i in state.items()}
        pdu = build_event(
            room_version=self.room_version,
            room_id=self.room_id,
            sender=sender,
            event_type=event_type,
            content=content,
            state_key=state_key,
            prev_events=[self._prev_reference(p) for p in prev_ids],
            current_state=current,
            origin_server_ts=1_700_000_000_000 + len(self.pdus),
            server_name=self.server_name,
            signing_key=signing_key or self.signing_key,
        )
        event_id = compute_event_id(pdu, self.room_version)
        self.add(event_id, pdu, state)
        return event_id, pdu

    def _prev_reference(self, event_id):
        """``(event_id, depth)``, plus the reference hash in room versions 1 and 2."""
        pdu = self.pdus[event_id]
        if get_room_version(self.room_version).event_format is EventFormat.V1:
            reference = encode_unpadded_base64(compute_reference_hash(pdu, self.room_version))
            return (event_id, pdu["depth"], {"sha256": reference})
        return (event_id, pdu["depth"])

    def auth_chain(self, event_ids):
        """Every event reachable through ``auth_events`` from ``event_ids`` (excluded)."""
        seen = set()
        todo = [a for e in event_ids for a in reference_ids(self.pdus[e].get("auth_events"))]
        while todo:
            event_id = todo.pop()
            if event_id in seen or event_id not in self.pdus:
                continue
            seen.add(event_id)
            todo.extend(reference_ids(self.pdus[event_id].get("auth_events")))
        return seen


class RemoteRoomClient:
    """A federation client whose every destination answers from one :class:`RemoteRoom`;
    records the calls made."""

    def __init__(self, remote):
        self.remote = remote
        self.calls = []
        self.unreachable = False

    def _check(self, name):
        self.calls.append(name)
        if self.unreachable:
            return defer.fail(MatrixError(502, "M_UNKNOWN", "unreachable"))
        return None

    def get_event(self, destination, event_id):
        failed = self._check("event")
        if failed:
            return failed
        if event_id not in self.remote.pdus:
            return defer.fail(MatrixError(404, "M_NOT_FOUND", "no such event"))
        return defer.succeed({"origin": destination, "pdus": [self.remote.pdus[event_id]]})

    def get_event_auth(self, destination, room_id, event_id):
        failed = self._check("event_auth")
        if failed:
            return failed
        chain = self.remote.auth_chain([event_id])
        return defer.succeed({"auth_chain": [self.remote.pdus[i] for i in sorted(chain)]})

    def get_state_ids(self, destination, room_id, event_id):
        failed = self._check("state_ids")
        if failed:
            return failed
        state = self.remote.state_before(event_id)
        chain = self.remote.auth_chain(list(state.values()))
        return defer.succeed({"pdu_ids": sorted(state.values()), "auth_chain_ids": sorted(chain)})

    def get_missing_events(
        self, destination, room_id, earliest_events, latest_events, limit, min_depth
    ):
        failed = self._check("get_missing_events")
        if failed:
            return failed
        found = []
        frontier = list(latest_events)
        seen = set(latest_events) | set(earliest_events)
        while frontier and len(found) < limit:
            next_frontier = []
            for event_id in frontier:
                for prev in reference_ids(self.remote.pdus[event_id].get("prev_events")):
                    if prev in seen or prev not in self.remote.pdus:
                        continue
                    seen.add(prev)
                    if self.remote.pdus[prev]["depth"] < min_depth:
                        continue
                    found.append(prev)
                    next_frontier.append(prev)
            frontier = next_frontier
        found = found[:limit]
        found.sort(key=lambda i: self.remote.pdus[i]["depth"])
        return defer.succeed({"events": [self.remote.pdus[i] for i in found]})


class ReceiverFixture(RoomServicesMixin):
    """Our server (``test.example``) with a public room created by local ``alice``, the
    remote server's copy of it, and a :class:`PduReceiver` wired to both."""

    room_version = "12"

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.alice = self.user("alice")
        self.room_id = yield self.room_creator.create_room(
            self.alice, preset="public_chat", room_version=self.room_version
        )
        self.remote = RemoteRoom(self.room_id, self.room_version)
        yield self.copy_our_events_to_remote()
        self.client = RemoteRoomClient(self.remote)
        self.keyring = DictKeyring(
            {self.server_name: self.signing_key, REMOTE: self.remote.signing_key}
        )
        self.acl = ServerAclChecker(self.store.events)
        self.receiver = PduReceiver(
            self.store.events,
            self.store.rooms,
            self.state_reader,
            self.persister,
            self.keyring,
            self.client,
            self.acl,
        )
        self.bob = f"@bob:{REMOTE}"

    def copy_our_events_to_remote(self):
        """Give the remote copy every event of the room we hold that it lacks."""
        return self.copy_room_to(self.remote)

    @defer.inlineCallbacks
    def copy_room_to(self, remote):
        """Give a :class:`RemoteRoom` every event of its room we hold that it lacks."""
        chunk = yield self.store.events.get_room_events_stream(
            remote.room_id, RoomPosition(0, 0), None, 1000, "f"
        )
        for stored in chunk:
            if stored.event_id in remote.pdus:
                continue
            prevs = stored.prev_event_ids
            before = remote.state_after[prevs[0]] if prevs else {}
            remote.add(stored.event_id, stored.pdu, before)

    @defer.inlineCallbacks
    def current_state_ids(self):
        """Our current state map of the room."""
        state = yield self.store.events.get_current_state_ids(self.room_id)
        return state

    @defer.inlineCallbacks
    def join_bob(self):
        """Bob (remote) joins the public room; returns the join's outcome."""
        event_id, pdu = self.remote.build(
            self.bob, "m.room.member", {"membership": "join"}, state_key=self.bob
        )
        outcome = yield self.receiver.receive_pdu(REMOTE, pdu)
        return outcome
