"""The inbound Server-Server API over HTTP with X-Matrix authentication: transactions, joins,
leaves, knocks, invites, room reads and queries."""

import json
from urllib.parse import quote, urlencode

from twisted.internet import defer, reactor, task
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from mxref.client.directory.service import RoomDirectory
from mxref.client.visibility import EventVisibility
from mxref.events.builder import build_create_event
from mxref.events.hashing import compute_event_id
from mxref.events.signing import generate_signing_key, sign_event
from mxref.federation.receiver.edus import EduRouter
from mxref.federation.receiver.membership import ResidentMembership
from mxref.federation.receiver.queries import FederationQueries
from mxref.federation.receiver.room_reads import FederationRoomReads
from mxref.federation.receiver.transactions import TransactionReceiver
from mxref.federation.transport.endpoints import (
    MembershipEndpoints,
    QueryEndpoints,
    RoomReadEndpoints,
    TransactionEndpoints,
)
from mxref.federation.transport.server import FederationRequestAuthenticator
from mxref.federation.transport.xmatrix import sign_request
from mxref.http.resource import JsonResource
from mxref.http.site import MatrixSite
from tests.federation.receiver_support import REMOTE, ReceiverFixture, RemoteRoom
from tests.client.support import deferred_test
from tests.http.memory_http import MemoryConnection

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"


def q(value):
    """Percent-encode a path segment."""
    return quote(value, safe="")


class FederationEndpointFixture(ReceiverFixture):
    """Every receiver service behind a JsonResource, and a signed HTTP client for the remote."""

    allow_public_rooms = True

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        yield self.store.accounts.create_user(self.alice, None)
        self.visibility = EventVisibility(self.store.events, self.store.state, self.store.rooms)
        self.reads = FederationRoomReads(
            self.store.events,
            self.store.state,
            self.store.rooms,
            self.state_reader,
            self.visibility,
            self.acl,
            self.server_name,
            reactor,
        )
        self.resident = ResidentMembership(
            self.store.events,
            self.store.rooms,
            self.store.accounts,
            self.creator,
            self.receiver,
            self.reads,
            self.acl,
            self.notifier,
            self.server_name,
            self.signing_key,
            reactor,
            forward_event=lambda origin, event_id: self.forwarded.append((origin, event_id)),
        )
        self.forwarded = []
        directory = RoomDirectory(
            self.store.events, self.store.rooms, self.membership, self.server_name
        )
        queries = FederationQueries(
            self.store.rooms,
            self.store.accounts,
            directory.public_rooms,
            self.server_name,
            self.allow_public_rooms,
        )
        transactions = TransactionReceiver(
            self.store.federation, self.store.rooms, self.receiver, EduRouter(), reactor
        )
        authenticator = FederationRequestAuthenticator(
            self.keyring, self.server_name, clock=reactor
        )
        resource = JsonResource()
        for endpoints in (
            TransactionEndpoints(authenticator, transactions),
            RoomReadEndpoints(authenticator, self.reads),
            MembershipEndpoints(authenticator, self.resident),
            QueryEndpoints(authenticator, queries),
        ):
            endpoints.register_routes(resource)
        self.site = MatrixSite(resource, MemoryReactorClock())

    async def request(self, method, path, body=None, origin=REMOTE, key=None, signed=True):
        """Send a request as ``origin`` and wait for the response."""
        headers = {}
        if signed:
            headers["Authorization"] = sign_request(
                key or self.remote.signing_key, origin, self.server_name, method, path, body
            )
        connection = MemoryConnection(self.site)
        connection.request(
            method, path, json.dumps(body).encode() if body is not None else None, headers
        )
        for _ in range(5000):
            try:
                return connection.response()
            except ValueError:
                await task.deferLater(reactor, 0.002, lambda: None)
        raise AssertionError(f"no response to {method} {path}")

    async def remote_join(self, user_id, room_id=None, remote=None, omit_members=False):
        """make_join + sign + send_join as the remote server; returns the send_join response."""
        room_id = room_id or self.room_id
        remote = remote or self.remote
        response = await self.request(
            "GET", f"{V1}/make_join/{q(room_id)}/{q(user_id)}?ver=10&ver=12"
        )
        assert response.code == 200, response.json()
        template = response.json()["event"]
        pdu = sign_event(
            {k: v for k, v in template.items() if k != "origin"},
            REMOTE,
            remote.signing_key,
            response.json()["room_version"],
        )
        event_id = compute_event_id(pdu, response.json()["room_version"])
        path = f"{V2}/send_join/{q(room_id)}/{q(event_id)}"
        if omit_members:
            path += "?omit_members=true"
        joined = await self.request("PUT", path, pdu)
        return event_id, pdu, joined


class TransactionEndpointTests(FederationEndpointFixture, unittest.TestCase):
    """``PUT /send/{txnId}`` over HTTP."""

    @deferred_test
    async def test_signed_transaction_is_processed(self):
        """A signed transaction's PDUs are processed and each gets a result."""
        join_id, join = self.remote.build(
            self.bob, "m.room.member", {"membership": "join"}, state_key=self.bob
        )
        body = {"origin": REMOTE, "origin_server_ts": 1, "pdus": [join], "edus": []}
        response = await self.request("PUT", f"{V1}/send/txn1", body)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json(), {"pdus": {join_id: {}}})
        members = await self.store.rooms.get_members(self.room_id)
        self.assertEqual(members[self.bob].membership, "join")

    @deferred_test
    async def test_unsigned_or_badly_signed_requests_are_refused(self):
        """Without a valid X-Matrix signature a transaction gets 401 and changes nothing."""
        _, join = self.remote.build(
            self.bob, "m.room.member", {"membership": "join"}, state_key=self.bob
        )
        body = {"origin": REMOTE, "origin_server_ts": 1, "pdus": [join], "edus": []}
        response = await self.request("PUT", f"{V1}/send/txn1", body, signed=False)
        self.assertEqual((response.code, response.json()["errcode"]), (401, "M_UNAUTHORIZED"))
        response = await self.request(
            "PUT", f"{V1}/send/txn1", body, key=generate_signing_key("r1")
        )
        self.assertEqual(response.code, 401)
        self.assertNotIn(self.bob, await self.store.rooms.get_members(self.room_id))

    @deferred_test
    async def test_too_many_pdus(self):
        """A transaction of 51 PDUs is refused with 400."""
        body = {"origin": REMOTE, "origin_server_ts": 1, "pdus": [{}] * 51, "edus": []}
        response = await self.request("PUT", f"{V1}/send/big", body)
        self.assertEqual(response.code, 400)


class JoinEndpointTests(FederationEndpointFixture, unittest.TestCase):
    """``make_join`` and ``send_join`` (v2) as the resident server."""

    @deferred_test
    async def test_join_through_make_join_and_send_join(self):
        """A remote user joins: the template is built on our extremities, the join is accepted,
        and the response holds the state before the join and its auth chain."""
        extremities = await self.store.events.get_forward_extremities(self.room_id)
        response = await self.request(
            "GET", f"{V1}/make_join/{q(self.room_id)}/{q(self.bob)}?ver=12"
        )
        self.assertEqual(response.code, 200)
        template = response.json()["event"]
        self.assertEqual(response.json()["room_version"], "12")
        self.assertEqual(template["prev_events"], [e for e, _ in extremities])
        self.assertNotIn("signatures", template)
        self.assertNotIn("hashes", template)
        self.assertEqual(
            (template["type"], template["state_key"], template["sender"]),
            ("m.room.member", self.bob, self.bob),
        )
        state_before = await self.current_state_ids()
        event_id, _pdu, joined = await self.remote_join(self.bob)
        self.assertEqual(joined.code, 200, joined.json())
        body = joined.json()
        self.assertEqual(body["origin"], self.server_name)
        self.assertEqual(len(body["state"]), len(state_before))
        self.assertEqual({(e["type"], e["state_key"]) for e in body["state"]}, set(state_before))
        self.assertFalse(body["members_omitted"])
        self.assertEqual(body["servers_in_room"], [self.server_name])
        chain_ids = {compute_event_id(e, "12") for e in body["auth_chain"]}
        self.assertIn(state_before[("m.room.power_levels", "")], chain_ids)
        self.assertNotIn("event", body)
        self.assertTrue(all("event_id" not in e for e in body["state"] + body["auth_chain"]))
        state = await self.current_state_ids()
        self.assertEqual(state[("m.room.member", self.bob)], event_id)
        self.assertEqual(self.forwarded, [(REMOTE, event_id)])

    @deferred_test
    async def test_join_of_a_room_version_1_room(self):
        """In a room version 1 room the joining server names the event; prev and auth events
        come with their reference hashes."""
        room = await self.room_creator.create_room(
            self.alice, preset="public_chat", room_version="1"
        )
        response = await self.request("GET", f"{V1}/make_join/{q(room)}/{q(self.bob)}?ver=1")
        self.assertEqual(response.code, 200, response.json())
        template = response.json()["event"]
        self.assertNotIn("event_id", template)
        self.assertTrue(
            all(isinstance(p, list) and "sha256" in p[1] for p in template["prev_events"])
        )
        event_id = f"$joinofbob:{REMOTE}"
        pdu = sign_event(dict(template, event_id=event_id), REMOTE, self.remote.signing_key, "1")
        joined = await self.request("PUT", f"{V2}/send_join/{q(room)}/{q(event_id)}", pdu)
        self.assertEqual(joined.code, 200, joined.json())
        members = await self.store.rooms.get_members(room)
        self.assertEqual(members[self.bob].event_id, event_id)

    @deferred_test
    async def test_incompatible_room_version(self):
        """Without a ``ver`` naming the room's version, make_join answers M_INCOMPATIBLE_ROOM_VERSION."""
        response = await self.request("GET", f"{V1}/make_join/{q(self.room_id)}/{q(self.bob)}")
        self.assertEqual(response.code, 400)
        self.assertEqual(response.json()["errcode"], "M_INCOMPATIBLE_ROOM_VERSION")
        self.assertEqual(response.json()["room_version"], "12")

    @deferred_test
    async def test_banned_user_and_invite_only_room_get_403(self):
        """make_join answers 403 for a banned user and for an invite-only room without an invite."""
        await self.membership.set_membership_of_other(self.alice, self.room_id, self.bob, "ban")
        response = await self.request(
            "GET", f"{V1}/make_join/{q(self.room_id)}/{q(self.bob)}?ver=12"
        )
        self.assertEqual((response.code, response.json()["errcode"]), (403, "M_FORBIDDEN"))
        private = await self.room_creator.create_room(self.alice, preset="private_chat")
        carol = f"@carol:{REMOTE}"
        response = await self.request("GET", f"{V1}/make_join/{q(private)}/{q(carol)}?ver=12")
        self.assertEqual(response.code, 403)

    @deferred_test
    async def test_user_of_another_server_is_refused(self):
        """A server may only make joins for its own users."""
        response = await self.request(
            "GET", f"{V1}/make_join/{q(self.room_id)}/{q('@x:other.example')}?ver=12"
        )
        self.assertEqual(response.code, 403)

    @deferred_test
    async def test_send_join_with_wrong_event_id_is_refused(self):
        """send_join checks that the path's event ID is the event's."""
        response = await self.request(
            "GET", f"{V1}/make_join/{q(self.room_id)}/{q(self.bob)}?ver=12"
        )
        template = response.json()["event"]
        pdu = sign_event(template, REMOTE, self.remote.signing_key, "12")
        response = await self.request("PUT", f"{V2}/send_join/{q(self.room_id)}/{q('$wrong')}", pdu)
        self.assertEqual((response.code, response.json()["errcode"]), (400, "M_INVALID_PARAM"))

    @deferred_test
    async def test_send_join_refusals(self):
        """send_join refuses with M_INVALID_PARAM a badly signed join, a join of another
        server's user and a join whose state_key is not its sender."""
        response = await self.request(
            "GET", f"{V1}/make_join/{q(self.room_id)}/{q(self.bob)}?ver=12"
        )
        template = {k: v for k, v in response.json()["event"].items() if k != "origin"}
        cases = [
            sign_event(template, REMOTE, generate_signing_key("r1"), "12"),
            sign_event(
                dict(template, sender="@x:other.example", state_key="@x:other.example"),
                REMOTE,
                self.remote.signing_key,
                "12",
            ),
            sign_event(
                dict(template, state_key=f"@other:{REMOTE}"), REMOTE, self.remote.signing_key, "12"
            ),
        ]
        for pdu in cases:
            event_id = compute_event_id(pdu, "12")
            response = await self.request(
                "PUT", f"{V2}/send_join/{q(self.room_id)}/{q(event_id)}", pdu
            )
            self.assertEqual((response.code, response.json()["errcode"]), (400, "M_INVALID_PARAM"))
        self.assertNotIn(self.bob, await self.store.rooms.get_members(self.room_id))

    @deferred_test
    async def test_omit_members(self):
        """With omit_members, a named room's member events are left out of the state."""
        await self.creator.send_event(
            self.room_id, self.alice, "m.room.name", {"name": "Named"}, state_key=""
        )
        _event_id, _pdu, joined = await self.remote_join(self.bob, omit_members=True)
        body = joined.json()
        self.assertTrue(body["members_omitted"])
        self.assertEqual([e for e in body["state"] if e["type"] == "m.room.member"], [])
        self.assertIn(self.server_name, body["servers_in_room"])
        # The creator's membership is still in the auth chain (it authorises the state).
        self.assertTrue(any(e["type"] == "m.room.member" for e in body["auth_chain"]))

    @deferred_test
    async def test_omit_members_keeps_heroes_of_unnamed_rooms(self):
        """An unnamed room keeps its heroes' member events in a partial-state response."""
        _event_id, _pdu, joined = await self.remote_join(self.bob, omit_members=True)
        members = [e["state_key"] for e in joined.json()["state"] if e["type"] == "m.room.member"]
        self.assertEqual(members, [self.alice])

    @deferred_test
    async def test_restricted_join_is_countersigned(self):
        """A restricted room: the template names a local authoriser, and send_join returns the
        event signed by us; a user in none of the allowed rooms gets 403."""
        await self.join_bob()
        restricted = await self.room_creator.create_room(
            self.alice,
            room_version="12",
            initial_state=[
                {
                    "type": "m.room.join_rules",
                    "content": {
                        "join_rule": "restricted",
                        "allow": [{"type": "m.room_membership", "room_id": self.room_id}],
                    },
                }
            ],
        )
        remote = RemoteRoom(restricted, "12", signing_key=self.remote.signing_key)
        await self.copy_room_to(remote)
        response = await self.request("GET", f"{V1}/make_join/{q(restricted)}/{q(self.bob)}?ver=12")
        self.assertEqual(response.code, 200, response.json())
        self.assertEqual(
            response.json()["event"]["content"]["join_authorised_via_users_server"], self.alice
        )
        event_id, _pdu, joined = await self.remote_join(self.bob, room_id=restricted, remote=remote)
        self.assertEqual(joined.code, 200, joined.json())
        self.assertIn(self.server_name, joined.json()["event"]["signatures"])
        members = await self.store.rooms.get_members(restricted)
        self.assertEqual(members[self.bob].event_id, event_id)
        carol = f"@carol:{REMOTE}"
        response = await self.request("GET", f"{V1}/make_join/{q(restricted)}/{q(carol)}?ver=12")
        self.assertEqual(response.code, 403)


class LeaveKnockInviteEndpointTests(FederationEndpointFixture, unittest.TestCase):
    """``make_leave``/``send_leave``, ``make_knock``/``send_knock`` and ``invite``."""

    async def make_and_send(self, kind, room_id, user_id, send_path, versions="?ver=12"):
        query = versions if kind != "leave" else ""
        response = await self.request("GET", f"{V1}/make_{kind}/{q(room_id)}/{q(user_id)}{query}")
        self.assertEqual(response.code, 200, response.json())
        pdu = sign_event(response.json()["event"], REMOTE, self.remote.signing_key, "12")
        event_id = compute_event_id(pdu, "12")
        sent = await self.request("PUT", f"{send_path}/{q(room_id)}/{q(event_id)}", pdu)
        return event_id, sent

    @deferred_test
    async def test_leave(self):
        """A joined remote user leaves through make_leave and send_leave."""
        await self.join_bob()
        event_id, sent = await self.make_and_send(
            "leave", self.room_id, self.bob, f"{V2}/send_leave"
        )
        self.assertEqual((sent.code, sent.json()), (200, {}))
        members = await self.store.rooms.get_members(self.room_id)
        self.assertEqual(
            (members[self.bob].membership, members[self.bob].event_id), ("leave", event_id)
        )

    @deferred_test
    async def test_knock(self):
        """A remote user knocks on a knock room and gets its stripped state, create event first."""
        room = await self.room_creator.create_room(
            self.alice,
            initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
        )
        event_id, sent = await self.make_and_send("knock", room, self.bob, f"{V1}/send_knock")
        self.assertEqual(sent.code, 200, sent.json())
        state = sent.json()["knock_room_state"]
        self.assertEqual(state[0]["type"], "m.room.create")
        self.assertNotIn("event_id", state[0])
        members = await self.store.rooms.get_members(room)
        self.assertEqual(members[self.bob].membership, "knock")

    @deferred_test
    async def test_make_knock_needs_ver(self):
        """make_knock without ver is a 400."""
        response = await self.request("GET", f"{V1}/make_knock/{q(self.room_id)}/{q(self.bob)}")
        self.assertEqual((response.code, response.json()["errcode"]), (400, "M_MISSING_PARAM"))

    def remote_room_invite(self, invitee):
        """A v12 room that only the remote server is in, and an invite of ``invitee``."""
        carol = f"@carol:{REMOTE}"
        create, room_id = build_create_event(
            room_version="12",
            creator=carol,
            content={},
            origin_server_ts=1,
            server_name=REMOTE,
            signing_key=self.remote.signing_key,
        )
        remote = RemoteRoom(room_id, "12", signing_key=self.remote.signing_key)
        remote.add(compute_event_id(create, "12"), create, {})
        remote.build(carol, "m.room.member", {"membership": "join"}, state_key=carol)
        remote.build(carol, "m.room.join_rules", {"join_rule": "invite"}, state_key="")
        invite_id, invite = remote.build(
            carol, "m.room.member", {"membership": "invite"}, state_key=invitee
        )
        return room_id, create, invite_id, invite

    @deferred_test
    async def test_invite_of_a_local_user(self):
        """A remote invite of our user is countersigned and shows as the user's invite."""
        room_id, create, invite_id, invite = self.remote_room_invite(self.alice)
        body = {"room_version": "12", "event": invite, "invite_room_state": [create]}
        response = await self.request("PUT", f"{V2}/invite/{q(room_id)}/{q(invite_id)}", body)
        self.assertEqual(response.code, 200, response.json())
        signed = response.json()["event"]
        self.assertEqual(set(signed["signatures"]), {REMOTE, self.server_name})
        self.assertEqual(compute_event_id(signed, "12"), invite_id)
        invites = await self.store.rooms.get_rooms_for_user(self.alice, memberships=("invite",))
        self.assertEqual([m.room_id for m in invites], [room_id])
        stored = await self.store.events.get_event(invite_id)
        self.assertEqual(stored.pdu["unsigned"]["invite_room_state"][0]["type"], "m.room.create")

    @deferred_test
    async def test_invite_checks(self):
        """Invites of unknown users, of users elsewhere, or without the create event are refused."""
        room_id, create, invite_id, invite = self.remote_room_invite(self.user("nobody"))
        body = {"room_version": "12", "event": invite, "invite_room_state": [create]}
        response = await self.request("PUT", f"{V2}/invite/{q(room_id)}/{q(invite_id)}", body)
        self.assertEqual(response.code, 403)
        room_id, create, invite_id, invite = self.remote_room_invite(self.alice)
        body = {"room_version": "12", "event": invite, "invite_room_state": []}
        response = await self.request("PUT", f"{V2}/invite/{q(room_id)}/{q(invite_id)}", body)
        self.assertEqual((response.code, response.json()["errcode"]), (400, "M_MISSING_PARAM"))
        body = {"room_version": "99", "event": invite, "invite_room_state": [create]}
        response = await self.request("PUT", f"{V2}/invite/{q(room_id)}/{q(invite_id)}", body)
        self.assertEqual(response.json()["errcode"], "M_INCOMPATIBLE_ROOM_VERSION")
        room_id, create, invite_id, invite = self.remote_room_invite("@someone:elsewhere.example")
        body = {"room_version": "12", "event": invite, "invite_room_state": [create]}
        response = await self.request("PUT", f"{V2}/invite/{q(room_id)}/{q(invite_id)}", body)
        self.assertEqual(response.code, 400)
        self.assertEqual(
            await self.store.rooms.get_rooms_for_user(self.alice, memberships=("invite",)), []
        )


class RoomReadEndpointTests(FederationEndpointFixture, unittest.TestCase):
    """``event``, ``state``, ``state_ids``, ``event_auth``, ``backfill``, ``get_missing_events``."""

    @deferred_test
    async def test_reads_for_a_server_in_the_room(self):
        """A joined server can read events, the state before one, auth chains and history."""
        join = await self.join_bob()
        msg_id, msg = self.remote.build(self.bob, "m.room.message", {"body": "hi"})
        await self.receiver.receive_pdu(REMOTE, msg)
        state_before_join = await self.store.events.get_state_ids_at_event(
            self.remote.pdus[join.event_id]["prev_events"][0]
        )

        response = await self.request("GET", f"{V1}/event/{q(msg_id)}")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json()["pdus"], [msg])
        self.assertEqual(response.json()["origin"], self.server_name)

        path = f"{V1}/state_ids/{q(self.room_id)}?{urlencode({'event_id': join.event_id})}"
        response = await self.request("GET", path)
        self.assertEqual(response.code, 200, response.json())
        self.assertEqual(sorted(response.json()["pdu_ids"]), sorted(state_before_join.values()))

        path = f"{V1}/state/{q(self.room_id)}?{urlencode({'event_id': msg_id})}"
        response = await self.request("GET", path)
        keys = {(e["type"], e["state_key"]) for e in response.json()["pdus"]}
        self.assertIn(("m.room.member", self.bob), keys)

        response = await self.request("GET", f"{V1}/event_auth/{q(self.room_id)}/{q(msg_id)}")
        chain_types = {e["type"] for e in response.json()["auth_chain"]}
        self.assertEqual(
            chain_types,
            {"m.room.create", "m.room.member", "m.room.power_levels", "m.room.join_rules"},
        )

        path = f"{V1}/backfill/{q(self.room_id)}?{urlencode({'v': msg_id, 'limit': 3})}"
        response = await self.request("GET", path)
        self.assertEqual(response.code, 200)
        self.assertEqual(len(response.json()["pdus"]), 3)
        self.assertEqual(response.json()["pdus"][0], msg)

        body = {"earliest_events": [], "latest_events": [msg_id], "limit": 2, "min_depth": 0}
        response = await self.request("POST", f"{V1}/get_missing_events/{q(self.room_id)}", body)
        self.assertEqual(response.code, 200)
        self.assertEqual(len(response.json()["events"]), 2)
        self.assertEqual(response.json()["events"][-1], self.remote.pdus[join.event_id])

    @deferred_test
    async def test_server_not_in_room_is_refused(self):
        """A server with no joined member gets 403 for the room reads; unknown events are 404."""
        create_id = (await self.current_state_ids())[("m.room.create", "")]
        path = f"{V1}/state_ids/{q(self.room_id)}?{urlencode({'event_id': create_id})}"
        response = await self.request("GET", path)
        self.assertEqual((response.code, response.json()["errcode"]), (403, "M_FORBIDDEN"))
        response = await self.request("GET", f"{V1}/event_auth/{q(self.room_id)}/{q(create_id)}")
        self.assertEqual(response.code, 403)
        response = await self.request("GET", f"{V1}/event/{q('$unknown')}")
        self.assertEqual(response.code, 404)

    @deferred_test
    async def test_acl_denied_server_is_refused(self):
        """An ACL-denied server gets 403 even though it has a member in the room."""
        await self.join_bob()
        await self.creator.send_event(
            self.room_id,
            self.alice,
            "m.room.server_acl",
            {"allow": ["*"], "deny": [REMOTE]},
            state_key="",
        )
        create_id = (await self.current_state_ids())[("m.room.create", "")]
        response = await self.request("GET", f"{V1}/event_auth/{q(self.room_id)}/{q(create_id)}")
        self.assertEqual(response.code, 403)
        response = await self.request("GET", f"{V1}/make_leave/{q(self.room_id)}/{q(self.bob)}")
        self.assertEqual(response.code, 403)

    @deferred_test
    async def test_private_history_is_served_redacted(self):
        """Events from before a server joined a 'joined'-visibility room are served redacted."""
        await self.creator.send_event(
            self.room_id,
            self.alice,
            "m.room.history_visibility",
            {"history_visibility": "joined"},
            state_key="",
        )
        secret_id, _ = await self.creator.send_event(
            self.room_id, self.alice, "m.room.message", {"body": "secret"}
        )
        await self.copy_our_events_to_remote()
        await self.join_bob()
        response = await self.request("GET", f"{V1}/event/{q(secret_id)}")
        self.assertEqual(response.json()["pdus"][0]["content"], {})


class QueryEndpointTests(FederationEndpointFixture, unittest.TestCase):
    """``query/directory``, ``query/profile`` and ``publicRooms``."""

    @deferred_test
    async def test_directory_and_profile(self):
        """Our aliases resolve and our users' profiles are readable, one field or all."""
        await self.store.rooms.create_alias(
            f"#lobby:{self.server_name}", self.room_id, self.alice, [self.server_name]
        )
        response = await self.request(
            "GET", f"{V1}/query/directory?{urlencode({'room_alias': '#lobby:' + self.server_name})}"
        )
        self.assertEqual(response.json(), {"room_id": self.room_id, "servers": [self.server_name]})
        response = await self.request(
            "GET", f"{V1}/query/directory?{urlencode({'room_alias': '#none:' + self.server_name})}"
        )
        self.assertEqual(response.code, 404)
        await self.store.accounts.set_displayname(self.alice, "Alice")
        response = await self.request(
            "GET", f"{V1}/query/profile?{urlencode({'user_id': self.alice})}"
        )
        self.assertEqual(response.json(), {"displayname": "Alice"})
        response = await self.request(
            "GET", f"{V1}/query/profile?{urlencode({'user_id': self.alice, 'field': 'avatar_url'})}"
        )
        self.assertEqual(response.json(), {})
        response = await self.request(
            "GET", f"{V1}/query/profile?{urlencode({'user_id': self.user('ghost')})}"
        )
        self.assertEqual(response.code, 404)

    @deferred_test
    async def test_public_rooms(self):
        """Published rooms are listed over federation when allowed."""
        await self.store.rooms.set_room_is_public(self.room_id, True)
        response = await self.request("GET", f"{V1}/publicRooms")
        self.assertEqual([r["room_id"] for r in response.json()["chunk"]], [self.room_id])
        response = await self.request(
            "POST", f"{V1}/publicRooms", {"filter": {"generic_search_term": "zzz"}}
        )
        self.assertEqual(response.json()["chunk"], [])


class PublicRoomsDisabledTests(FederationEndpointFixture, unittest.TestCase):
    """``allow_public_rooms_over_federation: false``."""

    allow_public_rooms = False

    @deferred_test
    async def test_public_rooms_refused(self):
        """The directory is refused with 403 when not shared."""
        response = await self.request("GET", f"{V1}/publicRooms")
        self.assertEqual((response.code, response.json()["errcode"]), (403, "M_FORBIDDEN"))
