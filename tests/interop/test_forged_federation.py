"""Forged federation traffic sent at a real ``twistd -n mxref`` process is refused.

The test plays a homeserver of its own, ``localhost:<port>``: a small TLS server in a
thread publishes its signing key at ``/_matrix/key/v2/server`` (so mxref can fetch it,
as the Server-Server API's "Retrieving server keys" describes) and accepts whatever
transactions mxref sends it. Requests to mxref are signed by hand with
``mxref.federation.transport.xmatrix.sign_request``.

Spec sections exercised (https://spec.matrix.org/v1.19/server-server-api/):
"Request Authentication" (a missing or bad ``X-Matrix`` header, or one naming another
destination, is answered 401), "Checks performed on receipt of a PDU" (a PDU with a bad
signature is dropped; one with a bad content hash is redacted before anything else; one
that fails the authorization rules is rejected) and "Transactions" (the ``/send`` answer
gives an ``error`` per refused PDU). The rules themselves are the room version's
"Authorization rules" (rooms/v11.md and later: a non-member may not send; a power levels
event needs the level for it; a user may not raise a level above their own).

Nothing forged may become room state or reach a client: each test reads the room as a
local user sees it afterwards.
"""

import atexit
import http.client
import http.server
import json
import os
import secrets
import shutil
import ssl
import tempfile
import threading
import time
from urllib.parse import quote

from twisted.trial import unittest

from mxref.events.builder import build_event
from mxref.events.hashing import compute_event_id
from mxref.events.room_versions import get_room_version
from mxref.events.signing import generate_signing_key
from mxref.federation.remote_rooms import fill_membership_template
from mxref.federation.sender.routing import pdu_for_wire
from mxref.federation.transport.keys import server_keys_response
from mxref.federation.transport.xmatrix import sign_request
from mxref.testing.csclient import timeline_events
from mxref.testing.processes import MxrefProcess, free_port, write_self_signed_certificate

_shared = {}


class FakeOrigin:
    """A pretend homeserver ``localhost:<port>`` on loopback TLS: publishes its key and
    answers 200 to transactions sent to it. Runs in a daemon thread.

    :param workdir: where its certificate goes.
    """

    def __init__(self, workdir):
        self.port = free_port()
        self.server_name = f"localhost:{self.port}"
        self.signing_key = generate_signing_key("forger1")
        cert_path = os.path.join(workdir, "origin.crt")
        key_path = os.path.join(workdir, "origin.key")
        write_self_signed_certificate(cert_path, key_path)
        origin = self

        class Answer(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.startswith("/_matrix/key/v2/server"):
                    now_ms = int(time.time() * 1000)
                    body = server_keys_response(
                        origin.server_name, origin.signing_key, {}, now_ms, 3600_000
                    )
                    self.reply(200, body)
                else:
                    self.reply(404, {"errcode": "M_NOT_FOUND", "error": "not here"})

            def do_PUT(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if self.path.startswith("/_matrix/federation/v1/send/"):
                    self.reply(200, {"pdus": {}})
                else:
                    self.reply(404, {"errcode": "M_NOT_FOUND", "error": "not here"})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Answer)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        """Start serving in a daemon thread."""
        self.thread.start()

    def stop(self):
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()


def shared_setup():
    """The module's mxref process and fake origin, started once; ``(mxref, origin)``."""
    if "pair" not in _shared:
        workdir = tempfile.mkdtemp(prefix="mxref-forged-")
        mxref = MxrefProcess(os.path.join(workdir, "mxref"))
        origin = FakeOrigin(workdir)
        origin.start()
        mxref.start()
        atexit.register(shutil.rmtree, workdir, True)
        atexit.register(origin.stop)
        atexit.register(mxref.stop)
        _shared["pair"] = (mxref, origin)
    return _shared["pair"]


def federation_request(
    mxref, method, path, body=None, *, origin, signing_key, destination=None, authorization=None
):
    """Send one federation request to mxref's TLS port; returns ``(status, decoded body)``.

    :param authorization: the ``Authorization`` header; by default one signed with
        ``signing_key`` for ``origin`` and ``destination`` (mxref's name by default);
        ``""`` sends none.
    """
    destination = destination or mxref.server_name
    if authorization is None:
        authorization = sign_request(signing_key, origin, destination, method, path, body)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection(
        "127.0.0.1", mxref.federation_port, context=context, timeout=30
    )
    try:
        headers = {"Content-Type": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        data = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None
    finally:
        connection.close()


class ForgedFederationTests(unittest.TestCase):
    """A server the test controls sends forged requests and PDUs at a real mxref process."""

    def setUp(self):
        self.mxref, self.origin = shared_setup()
        self.alice = self.mxref.client_for("alice" + secrets.token_hex(3))
        self.room_id = self.alice.create_room(preset="public_chat")
        self.mallory = f"@mallory{secrets.token_hex(3)}:{self.origin.server_name}"
        self.join_as(self.mallory)

    # --- the fake origin's side of the protocol ----------------------------------------

    def signed(self, method, path, body=None, **kwargs):
        """A request from the fake origin signed with its published key."""
        return federation_request(
            self.mxref,
            method,
            path,
            body,
            origin=self.origin.server_name,
            signing_key=self.origin.signing_key,
            **kwargs,
        )

    def join_as(self, user_id):
        """Join ``user_id`` of the fake origin to the room through make_join/send_join; keep
        the room version, its state (event dicts with IDs) and the join as the latest event."""
        room = quote(self.room_id, safe="")
        user = quote(user_id, safe="")
        versions = "&".join(f"ver={v}" for v in ("10", "11", "12"))
        status, made = self.signed(
            "GET", f"/_matrix/federation/v1/make_join/{room}/{user}?{versions}"
        )
        self.assertEqual(status, 200, made)
        self.version = get_room_version(made["room_version"])
        event_id, pdu = fill_membership_template(
            made["event"],
            self.version,
            user_id,
            self.room_id,
            "join",
            {},
            self.origin.server_name,
            self.origin.signing_key,
            int(time.time() * 1000),
        )
        status, joined = self.signed(
            "PUT",
            f"/_matrix/federation/v2/send_join/{room}/{quote(event_id, safe='')}",
            pdu_for_wire(pdu, self.version),
        )
        self.assertEqual(status, 200, joined)
        self.state = {}
        for raw in joined["state"]:
            self.state[(raw["type"], raw["state_key"])] = dict(
                raw, event_id=compute_event_id(raw, self.version)
            )
        self.state[("m.room.member", user_id)] = dict(pdu, event_id=event_id)
        self.latest = (event_id, pdu["depth"])

    def build(self, sender, event_type, content, state_key=None, signing_key=None):
        """A PDU from the fake origin on top of the latest event; ``(event_id, pdu)``."""
        pdu = build_event(
            room_version=self.version,
            room_id=self.room_id,
            sender=sender,
            event_type=event_type,
            content=content,
            state_key=state_key,
            prev_events=[self.latest],
            current_state=self.state,
            origin_server_ts=int(time.time() * 1000),
            server_name=self.origin.server_name,
            signing_key=signing_key or self.origin.signing_key,
        )
        return compute_event_id(pdu, self.version), pdu

    def send_transaction(self, pdus, **kwargs):
        """PUT /send with ``pdus`` (wire form); returns ``(status, body)``."""
        txn_id = "txn" + secrets.token_hex(4)
        body = {
            "origin": self.origin.server_name,
            "origin_server_ts": int(time.time() * 1000),
            "pdus": [pdu_for_wire(pdu, self.version) for pdu in pdus],
            "edus": [],
        }
        return self.signed("PUT", f"/_matrix/federation/v1/send/{txn_id}", body, **kwargs)

    # --- what a local user sees --------------------------------------------------------

    def alice_sees(self):
        """The event IDs and contents of the room's latest 50 events as Alice sees them."""
        path = f"/_matrix/client/v3/rooms/{quote(self.room_id, safe='')}/messages"
        chunk = self.alice.request("GET", path, query={"dir": "b", "limit": 50})["chunk"]
        return {e["event_id"]: e for e in chunk}

    def alice_state(self, event_type, state_key=""):
        path = "/".join(
            [
                "/_matrix/client/v3/rooms",
                quote(self.room_id, safe=""),
                "state",
                quote(event_type, safe=""),
                quote(state_key, safe=""),
            ]
        )
        return self.alice.request("GET", path)

    def assert_refused_pdu(self, event_id, pdu, words):
        """Sending ``pdu`` gets a per-PDU error naming one of ``words``; Alice never sees it."""
        status, body = self.send_transaction([pdu])
        self.assertEqual(status, 200, body)
        result = body["pdus"].get(event_id, {})
        self.assertIn("error", result, body)
        self.assertTrue(
            any(word in result["error"].lower() for word in words),
            f"{result['error']!r} names none of {words}",
        )
        self.assertNotIn(event_id, self.alice_sees())

    # --- tests -------------------------------------------------------------------------

    def test_genuine_message_is_accepted(self):
        """A message from the joined remote user, correctly signed, reaches Alice (the control
        that shows the forged cases below fail for the forgery alone)."""
        event_id, pdu = self.build(
            self.mallory, "m.room.message", {"msgtype": "m.text", "body": "hi"}
        )
        status, body = self.send_transaction([pdu])
        self.assertEqual((status, body["pdus"][event_id]), (200, {}))
        seen = self.alice_sees()
        self.assertEqual(seen[event_id]["content"]["body"], "hi")
        self.assertEqual(seen[event_id]["sender"], self.mallory)

    def test_missing_authorization_is_refused(self):
        """A transaction without an X-Matrix header is answered 401 M_UNAUTHORIZED, and its PDU
        never reaches Alice."""
        event_id, pdu = self.build(
            self.mallory, "m.room.message", {"msgtype": "m.text", "body": "x"}
        )
        status, body = self.send_transaction([pdu], authorization="")
        self.assertEqual((status, body["errcode"]), (401, "M_UNAUTHORIZED"))
        self.assertNotIn(event_id, self.alice_sees())

    def test_bad_request_signature_is_refused(self):
        """A transaction signed with a key other than the one the origin publishes (same key ID)
        is answered 401 saying the signature is bad."""
        event_id, pdu = self.build(
            self.mallory, "m.room.message", {"msgtype": "m.text", "body": "x"}
        )
        impostor = generate_signing_key(self.origin.signing_key.version)
        txn_path = "/_matrix/federation/v1/send/forged" + secrets.token_hex(4)
        body = {
            "origin": self.origin.server_name,
            "origin_server_ts": int(time.time() * 1000),
            "pdus": [pdu_for_wire(pdu, self.version)],
            "edus": [],
        }
        header = sign_request(
            impostor, self.origin.server_name, self.mxref.server_name, "PUT", txn_path, body
        )
        status, answer = self.signed("PUT", txn_path, body, authorization=header)
        self.assertEqual((status, answer["errcode"]), (401, "M_UNAUTHORIZED"))
        self.assertIn("signature", answer["error"].lower())
        self.assertNotIn(event_id, self.alice_sees())

    def test_signature_over_other_content_is_refused(self):
        """A genuine header replayed with a different body is answered 401 (the signature covers
        the content)."""
        event_id, pdu = self.build(
            self.mallory, "m.room.message", {"msgtype": "m.text", "body": "x"}
        )
        txn_path = "/_matrix/federation/v1/send/replayed" + secrets.token_hex(4)
        signed_body = {
            "origin": self.origin.server_name,
            "origin_server_ts": 1,
            "pdus": [],
            "edus": [],
        }
        header = sign_request(
            self.origin.signing_key,
            self.origin.server_name,
            self.mxref.server_name,
            "PUT",
            txn_path,
            signed_body,
        )
        sent_body = dict(signed_body, pdus=[pdu_for_wire(pdu, self.version)])
        status, answer = self.signed("PUT", txn_path, sent_body, authorization=header)
        self.assertEqual((status, answer["errcode"]), (401, "M_UNAUTHORIZED"))
        self.assertNotIn(event_id, self.alice_sees())

    def test_wrong_destination_is_refused(self):
        """A request signed for another destination is answered 401 saying so."""
        event_id, pdu = self.build(
            self.mallory, "m.room.message", {"msgtype": "m.text", "body": "x"}
        )
        status, body = self.send_transaction([pdu], destination="localhost:1")
        self.assertEqual((status, body["errcode"]), (401, "M_UNAUTHORIZED"))
        self.assertIn("localhost:1", body["error"])
        self.assertNotIn(event_id, self.alice_sees())

    def test_pdu_with_bad_signature_is_dropped(self):
        """A PDU whose origin signature was made with another key is dropped with an error naming
        the signature; a correctly signed transaction carries it."""
        impostor = generate_signing_key(self.origin.signing_key.version)
        event_id, pdu = self.build(
            self.mallory, "m.room.message", {"msgtype": "m.text", "body": "x"}, signing_key=impostor
        )
        self.assert_refused_pdu(event_id, pdu, ["signature"])

    def test_pdu_with_bad_content_hash_is_redacted(self):
        """A PDU whose content was changed after signing (signature still valid on the redacted
        form, content hash wrong) reaches Alice only redacted: the forged body never shows."""
        event_id, pdu = self.build(
            self.mallory, "m.room.message", {"msgtype": "m.text", "body": "genuine"}
        )
        forged = dict(pdu, content={"msgtype": "m.text", "body": "forged"})
        status, body = self.send_transaction([forged])
        self.assertEqual(status, 200, body)
        seen = self.alice_sees()
        self.assertEqual(body["pdus"][event_id], {})
        self.assertEqual(seen[event_id]["content"], {})
        for event in seen.values():
            self.assertNotEqual(event["content"].get("body"), "forged")

    def test_state_pdu_with_bad_content_hash_sets_no_forged_state(self):
        """A topic whose content was changed after signing never sets the forged topic (nor the
        signed one: only the redacted, empty form may be kept)."""
        event_id, pdu = self.build(self.mallory, "m.room.topic", {"topic": "genuine"}, state_key="")
        forged = dict(pdu, content={"topic": "forged"})
        status, body = self.send_transaction([forged])
        self.assertEqual(status, 200, body)
        try:
            topic = self.alice_state("m.room.topic")
        except Exception:
            topic = {}
        self.assertNotEqual(topic.get("topic"), "forged")
        self.assertNotEqual(topic.get("topic"), "genuine")

    def test_non_member_message_is_rejected(self):
        """A message from a user of the origin who never joined is rejected by the auth rules,
        and the answer says the sender is not in the room."""
        eve = f"@eve{secrets.token_hex(3)}:{self.origin.server_name}"
        event_id, pdu = self.build(
            eve, "m.room.message", {"msgtype": "m.text", "body": "let me in"}
        )
        self.assert_refused_pdu(event_id, pdu, ["join", "member", "auth"])

    def adopt(self, event_id):
        """Fetch ``event_id`` from mxref over federation and build later PDUs on it (and on it
        as state, when it is a state event)."""
        status, body = self.signed(
            "GET", f"/_matrix/federation/v1/event/{quote(event_id, safe='')}"
        )
        self.assertEqual(status, 200, body)
        (pdu,) = body["pdus"]
        if "state_key" in pdu:
            self.state[(pdu["type"], pdu["state_key"])] = dict(pdu, event_id=event_id)
        self.latest = (event_id, pdu["depth"])

    def test_sending_power_levels_at_level_zero_is_rejected(self):
        """A joined remote user at power level 0 who sends power levels giving themselves 100 is
        rejected (the event needs a higher level); the room's power levels stay as they were."""
        before = self.alice_state("m.room.power_levels")
        self.assertNotIn(self.mallory, before.get("users", {}))
        content = json.loads(json.dumps(before))
        content.setdefault("users", {})[self.mallory] = 100
        event_id, pdu = self.build(self.mallory, "m.room.power_levels", content, state_key="")
        self.assert_refused_pdu(event_id, pdu, ["power", "level"])
        self.assertEqual(self.alice_state("m.room.power_levels"), before)
        # A genuine message after the refused one is still accepted: the server kept talking.
        ok_id, ok_pdu = self.build(
            self.mallory, "m.room.message", {"msgtype": "m.text", "body": "ok"}
        )
        status, body = self.send_transaction([ok_pdu])
        self.assertEqual(body["pdus"][ok_id], {})

    def test_raising_own_power_level_is_rejected(self):
        """A remote moderator (level 50, allowed to send power levels) who raises their own level
        to 100 is rejected by the rule on raising levels above one's own; power levels are
        unchanged for Alice."""
        levels = self.alice_state("m.room.power_levels")
        levels.setdefault("users", {})[self.mallory] = 50
        levels.setdefault("events", {})["m.room.power_levels"] = 50
        path = "/".join(
            [
                "/_matrix/client/v3/rooms",
                quote(self.room_id, safe=""),
                "state",
                "m.room.power_levels",
                "",
            ]
        )
        granted = self.alice.request("PUT", path, levels)["event_id"]
        self.adopt(granted)
        before = self.alice_state("m.room.power_levels")
        self.assertEqual(before["users"][self.mallory], 50)

        raised = json.loads(json.dumps(before))
        raised["users"][self.mallory] = 100
        event_id, pdu = self.build(self.mallory, "m.room.power_levels", raised, state_key="")
        self.assert_refused_pdu(event_id, pdu, ["power level", "own"])
        self.assertEqual(self.alice_state("m.room.power_levels"), before)

        # Within their own level the same user may change the power levels: the refusal above
        # was for raising their level, not for sending power levels at all.
        allowed = json.loads(json.dumps(before))
        allowed["events"]["m.room.topic"] = 50
        ok_id, ok_pdu = self.build(self.mallory, "m.room.power_levels", allowed, state_key="")
        status, body = self.send_transaction([ok_pdu])
        self.assertEqual((status, body["pdus"][ok_id]), (200, {}))
        self.assertEqual(self.alice_state("m.room.power_levels")["events"]["m.room.topic"], 50)

    def test_pdu_impersonating_a_local_user_is_dropped(self):
        """A PDU claiming Alice (a user of mxref) as sender, signed only by the fake origin, is
        dropped: it lacks the signature of the sender's server."""
        event_id, pdu = self.build(
            self.alice.user_id, "m.room.message", {"msgtype": "m.text", "body": "I am Alice"}
        )
        self.assert_refused_pdu(event_id, pdu, ["signature", self.mxref.server_name.lower()])

    def test_transaction_body_origin_gives_no_authority(self):
        """A transaction signed by the fake origin whose body claims to come from mxref itself is
        taken as the signer's: its typing EDU for Alice is ignored (only the signer's own users
        may be said to type), and its PDU is judged as the signer's."""
        _, since = self.alice.sync_until(lambda r: True)
        event_id, pdu = self.build(
            self.mallory, "m.room.message", {"msgtype": "m.text", "body": "x"}
        )
        txn_path = "/_matrix/federation/v1/send/mismatch" + secrets.token_hex(4)
        body = {
            "origin": self.mxref.server_name,
            "origin_server_ts": int(time.time() * 1000),
            "pdus": [pdu_for_wire(pdu, self.version)],
            "edus": [
                {
                    "edu_type": "m.typing",
                    "content": {
                        "room_id": self.room_id,
                        "user_id": self.alice.user_id,
                        "typing": True,
                    },
                }
            ],
        }
        status, answer = self.signed("PUT", txn_path, body)
        self.assertEqual((status, answer["pdus"][event_id]), (200, {}))
        response, _ = self.alice.sync_until(
            lambda r: event_id in [e["event_id"] for e in timeline_events(r, self.room_id)],
            since=since,
            deadline_s=20,
        )
        room = response["rooms"]["join"][self.room_id]
        for event in room.get("ephemeral", {}).get("events", []):
            if event["type"] == "m.typing":
                self.assertNotIn(self.alice.user_id, event["content"].get("user_ids", []))
        self.assertEqual(self.alice_sees()[event_id]["sender"], self.mallory)

    def test_origin_whose_keys_cannot_be_fetched_is_refused(self):
        """A request claiming to come from a server that publishes no key (nothing listens at its
        port) is answered 401."""
        nobody = f"localhost:{free_port()}"
        status, body = federation_request(
            self.mxref,
            "GET",
            f"/_matrix/federation/v1/state_ids/{quote(self.room_id, safe='')}?event_id="
            + quote(self.latest[0], safe=""),
            origin=nobody,
            signing_key=generate_signing_key("nobody1"),
        )
        self.assertEqual((status, body["errcode"]), (401, "M_UNAUTHORIZED"), body)

    def test_send_join_for_another_servers_user_is_refused(self):
        """The fake origin cannot join a user of mxref's own into the room through send_join."""
        room = quote(self.room_id, safe="")
        victim = f"@victim{secrets.token_hex(3)}:{self.mxref.server_name}"
        status, body = self.signed(
            "GET", f"/_matrix/federation/v1/make_join/{room}/{quote(victim, safe='')}?ver=12"
        )
        self.assertEqual((status, body.get("errcode")), (403, "M_FORBIDDEN"), body)
        event_id, pdu = self.build(
            victim, "m.room.member", {"membership": "join"}, state_key=victim
        )
        status, body = self.signed(
            "PUT",
            f"/_matrix/federation/v2/send_join/{room}/{quote(event_id, safe='')}",
            pdu_for_wire(pdu, self.version),
        )
        self.assertIn(status, (400, 403), body)
        self.assertNotIn(victim, [k[1] for k in self.room_members()])

    def test_typing_edu_for_a_local_user_is_ignored(self):
        """A typing notification the fake origin sends for Alice (not its user) never shows in
        Alice's /sync, while one for its own joined user does."""
        _, since = self.alice.sync_until(lambda r: True)
        edus = [
            {
                "edu_type": "m.typing",
                "content": {"room_id": self.room_id, "user_id": user_id, "typing": True},
            }
            for user_id in (self.alice.user_id, self.mallory)
        ]
        txn_id = "typing" + secrets.token_hex(4)
        body = {
            "origin": self.origin.server_name,
            "origin_server_ts": int(time.time() * 1000),
            "pdus": [],
            "edus": edus,
        }
        status, answer = self.signed("PUT", f"/_matrix/federation/v1/send/{txn_id}", body)
        self.assertEqual(status, 200, answer)
        typers = set()

        def saw_mallory(response):
            room = response.get("rooms", {}).get("join", {}).get(self.room_id, {})
            for event in room.get("ephemeral", {}).get("events", []):
                if event["type"] == "m.typing":
                    typers.update(event["content"].get("user_ids", []))
            return self.mallory in typers

        self.alice.sync_until(saw_mallory, since=since, deadline_s=20)
        self.assertNotIn(self.alice.user_id, typers)

    def room_members(self):
        """The ``(m.room.member, user_id)`` keys of the room's state as Alice sees it."""
        path = f"/_matrix/client/v3/rooms/{quote(self.room_id, safe='')}/state"
        return [
            (e["type"], e["state_key"])
            for e in self.alice.request("GET", path)
            if e["type"] == "m.room.member"
        ]
