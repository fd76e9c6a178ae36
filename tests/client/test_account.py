"""Tests for mxref.client.account over HTTP against a real SQLite store: login, logout, registration,
devices, password changes, deactivation, user-interactive auth and shared-secret registration."""

import io
import json
import os
import random
import sys
import urllib.error
from urllib.parse import urlsplit

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, reactor, threads, utils
from twisted.internet.threads import blockingCallFromThread
from twisted.trial import unittest

from mxref.auth.shared_secret import compute_registration_mac
from mxref.client.account.service import (
    AccountRegistrar,
    CredentialChecker,
    InteractiveAuthenticator,
    InteractiveAuthIncomplete,
    user_text_from_auth_dict,
)
from mxref.config.registration import RegistrationConfig
from mxref.errors import MatrixError
from mxref.register_user import RegistrationFailed, register_user
from mxref.types import is_valid_localpart
from tests.client.support import ClientApiHarness, LoginRateLimits, deferred_test
from tests.schema import validate_response, validate_schema

V3 = "/_matrix/client/v3"
PASSWORD = "correct horse"
OPEN_REGISTRATION = RegistrationConfig(enable_registration=True, enable_registration_without_verification=True)
SECRET = "s3cret shared"
ERROR_SCHEMA = "api/client-server/definitions/errors/error.yaml"
RATE_LIMITED_SCHEMA = "api/client-server/definitions/errors/rate_limited.yaml"


def password_login(user, password=PASSWORD, **extra):
    """A /login body for m.login.password with an m.id.user identifier."""
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password}
    body.update(extra)
    return body


def password_auth(user, session, password=PASSWORD):
    """A UIA auth dict for the m.login.password stage."""
    return {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": password, "session": session}


class AccountTestCase(unittest.TestCase):
    """Builds a harness with alice registered; subclasses may change the harness options."""

    harness_options = {}

    @deferred_test
    async def setUp(self):
        self.harness = await ClientApiHarness.create(self, **self.harness_options)
        self.alice = await self.harness.register_user("alice")

    def request(self, method, path, body=None, **kwargs):
        """Send a request to a client API path under /_matrix/client/v3 (or a full path)."""
        full_path = path if path.startswith("/_") or path.startswith("/.") else V3 + path
        return self.harness.request(method, full_path, body, **kwargs)

    def assert_error(self, response, code, errcode):
        """The response is a spec-shaped error with this status and errcode."""
        self.assertEqual((response.code, response.json().get("errcode")), (code, errcode), response.json())
        validate_schema(ERROR_SCHEMA, response.json())

    async def token_works(self, token):
        response = await self.request("GET", "/account/whoami", token=token)
        return response.code == 200


class LoginTests(AccountTestCase):
    @deferred_test
    async def test_login_flows_list_password(self):
        """GET /login offers m.login.password, in the spec's shape."""
        response = await self.request("GET", "/login")
        self.assertEqual(response.code, 200)
        validate_response("client-server/login.yaml", "/login", "get", 200, response.json())
        self.assertEqual(response.json(), {"flows": [{"type": "m.login.password"}]})

    @deferred_test
    async def test_login_with_localpart_gives_a_working_token_on_a_new_device(self):
        """Logging in with a localpart returns user_id, a working access token and a new device ID."""
        response = await self.request("POST", "/login", password_login("alice"))
        self.assertEqual(response.code, 200)
        body = response.json()
        validate_response("client-server/login.yaml", "/login", "post", 200, body)
        self.assertEqual(body["user_id"], "@alice:test.example")
        self.assertNotEqual(body["device_id"], self.alice.device_id)
        self.assertNotIn("well_known", body)
        whoami = await self.request("GET", "/account/whoami", token=body["access_token"])
        self.assertEqual(whoami.json(), {"user_id": "@alice:test.example", "device_id": body["device_id"],
                                         "is_guest": False})

    @deferred_test
    async def test_login_with_full_user_id_and_deprecated_user_field(self):
        """The identifier may be a full user ID, and the deprecated top-level 'user' still works."""
        full = await self.request("POST", "/login", password_login("@alice:test.example"))
        self.assertEqual(full.json()["user_id"], "@alice:test.example")
        legacy = await self.request("POST", "/login", {"type": "m.login.password", "user": "alice",
                                                       "password": PASSWORD})
        self.assertEqual(legacy.code, 200)
        self.assertEqual(legacy.json()["user_id"], "@alice:test.example")

    @deferred_test
    async def test_login_is_case_insensitive_for_lowercase_accounts(self):
        """'ALICE' logs in as @alice, since new localparts are lower case."""
        response = await self.request("POST", "/login", password_login("@ALICE:test.example"))
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json()["user_id"], "@alice:test.example")

    @deferred_test
    async def test_login_with_chosen_device(self):
        """A client-chosen device_id is used and created with initial_device_display_name."""
        response = await self.request("POST", "/login", password_login(
            "alice", device_id="MYPHONE", initial_device_display_name="Jungle Phone"))
        self.assertEqual(response.json()["device_id"], "MYPHONE")
        device = await self.request("GET", "/devices/MYPHONE", token=response.json()["access_token"])
        self.assertEqual(device.json(), {"device_id": "MYPHONE", "display_name": "Jungle Phone",
                                         "last_seen_ip": "127.0.0.7", "last_seen_ts": 1_700_000_000_000})

    @deferred_test
    async def test_login_to_existing_device_keeps_its_name(self):
        """Logging in again to a known device keeps the device and ignores the new display name."""
        await self.request("POST", "/login", password_login("alice", device_id="D1", initial_device_display_name="A"))
        again = await self.request("POST", "/login", password_login("alice", device_id="D1",
                                                                     initial_device_display_name="B"))
        self.assertEqual(again.json()["device_id"], "D1")
        device = await self.request("GET", "/devices/D1", token=again.json()["access_token"])
        self.assertEqual(device.json()["display_name"], "A")

    @deferred_test
    async def test_login_to_existing_device_invalidates_its_old_token(self):
        """A new login to a known device ID ends the token that device had before."""
        first = await self.request("POST", "/login", password_login("alice", device_id="D1"))
        second = await self.request("POST", "/login", password_login("alice", device_id="D1"))
        old = await self.request("GET", "/account/whoami", token=first.json()["access_token"])
        self.assert_error(old, 401, "M_UNKNOWN_TOKEN")
        new = await self.request("GET", "/account/whoami", token=second.json()["access_token"])
        self.assertEqual(new.json()["device_id"], "D1")

    @deferred_test
    async def test_bad_credentials_are_403(self):
        """A wrong password, an unknown user and a user of another server all get 403 M_FORBIDDEN."""
        for body in (password_login("alice", "wrong"), password_login("nobody"),
                     password_login("@alice:elsewhere.example"), password_login("@@@")):
            response = await self.request("POST", "/login", body)
            self.assert_error(response, 403, "M_FORBIDDEN")
            validate_response("client-server/login.yaml", "/login", "post", 403, response.json())

    @deferred_test
    async def test_unknown_login_type_is_400_m_unknown(self):
        """An unsupported login type (m.login.token is not offered) gets 400 M_UNKNOWN."""
        response = await self.request("POST", "/login", {"type": "m.login.token", "token": "abc"})
        self.assert_error(response, 400, "M_UNKNOWN")

    @deferred_test
    async def test_malformed_login_requests(self):
        """Bodies that are not JSON, not objects, or have missing or mistyped fields get 400s, never 500."""
        cases = [
            (b"{not json", "M_NOT_JSON"),
            ([1, 2], "M_BAD_JSON"),
            ({"identifier": {"type": "m.id.user", "user": "alice"}, "password": PASSWORD}, "M_MISSING_PARAM"),
            ({"type": 7}, "M_BAD_JSON"),
            ({"type": "m.login.password", "password": PASSWORD}, "M_MISSING_PARAM"),
            ({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}}, "M_MISSING_PARAM"),
            (password_login("alice", 1234), "M_BAD_JSON"),
            (password_login(["alice"]), "M_BAD_JSON"),
            ({"type": "m.login.password", "identifier": "alice", "password": PASSWORD}, "M_BAD_JSON"),
            ({"type": "m.login.password", "identifier": {"type": "m.id.carrier-pigeon"}, "password": PASSWORD},
             "M_UNKNOWN"),
            (password_login("alice", device_id=""), "M_INVALID_PARAM"),
            (password_login("alice", device_id=5), "M_BAD_JSON"),
            (password_login("alice", initial_device_display_name=False), "M_BAD_JSON"),
        ]
        for body, errcode in cases:
            response = await self.request("POST", "/login", body)
            self.assert_error(response, 400, errcode)

    @deferred_test
    async def test_third_party_identifiers_are_unknown(self):
        """An m.id.thirdparty identifier gets 403: mxref has no 3PIDs bound to accounts."""
        response = await self.request("POST", "/login", {
            "type": "m.login.password", "password": PASSWORD,
            "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "a@example.org"}})
        self.assert_error(response, 403, "M_FORBIDDEN")

    @deferred_test
    async def test_deactivated_user_cannot_log_in(self):
        """After deactivation even the old password gets 403 M_FORBIDDEN."""
        await self.harness.store.accounts.deactivate(self.alice.user_id)
        response = await self.request("POST", "/login", password_login("alice"))
        self.assert_error(response, 403, "M_FORBIDDEN")


class LoginOptionsTests(unittest.TestCase):
    @deferred_test
    async def test_well_known_is_returned_when_configured(self):
        """With a discovery object configured, /login returns it as well_known."""
        well_known = {"m.homeserver": {"base_url": "https://matrix.test.example/"}}
        harness = await ClientApiHarness.create(self, well_known=well_known)
        await harness.register_user("alice")
        response = await harness.request("POST", V3 + "/login", password_login("alice"))
        validate_response("client-server/login.yaml", "/login", "post", 200, response.json())
        self.assertEqual(response.json()["well_known"], well_known)

    @deferred_test
    async def test_module_login_type(self):
        """A module-provided login type is listed by GET /login and logs in the user its checker names."""
        def check_otp(body):
            return defer.succeed("@alice:test.example" if body.get("otp") == "123456" else None)

        harness = await ClientApiHarness.create(self, extra_login_types={"org.example.otp": check_otp})
        await harness.register_user("alice")
        flows = await harness.request("GET", V3 + "/login")
        self.assertEqual([flow["type"] for flow in flows.json()["flows"]], ["m.login.password", "org.example.otp"])
        good = await harness.request("POST", V3 + "/login", {"type": "org.example.otp", "otp": "123456"})
        self.assertEqual((good.code, good.json()["user_id"]), (200, "@alice:test.example"))
        bad = await harness.request("POST", V3 + "/login", {"type": "org.example.otp", "otp": "000000"})
        self.assertEqual((bad.code, bad.json()["errcode"]), (403, "M_FORBIDDEN"))

    @deferred_test
    async def test_login_rate_limited_per_address(self):
        """The third login from one address within the burst gets 429 M_LIMIT_EXCEEDED with a retry time."""
        harness = await ClientApiHarness.create(self, rate_limits=LoginRateLimits(address=(0.1, 2)))
        await harness.register_user("alice")
        for _ in range(2):
            response = await harness.request("POST", V3 + "/login", password_login("alice"))
            self.assertEqual(response.code, 200)
        limited = await harness.request("POST", V3 + "/login", password_login("alice"))
        self.assertEqual((limited.code, limited.json()["errcode"]), (429, "M_LIMIT_EXCEEDED"))
        validate_schema(RATE_LIMITED_SCHEMA, limited.json())
        self.assertEqual(limited.json()["retry_after_ms"], 10000)
        self.assertEqual(limited.header("retry-after"), "10")
        other_address = await harness.request("POST", V3 + "/login", password_login("alice"), peer_host="10.0.0.9")
        self.assertEqual(other_address.code, 200)
        harness.clock.advance(10)
        later = await harness.request("POST", V3 + "/login", password_login("alice"))
        self.assertEqual(later.code, 200)

    @deferred_test
    async def test_failed_attempts_lock_out_the_account_for_a_while(self):
        """After the allowed wrong passwords, even the right one gets 429 until the limit refills."""
        harness = await ClientApiHarness.create(self, rate_limits=LoginRateLimits(failed_attempts=(0.5, 2)))
        await harness.register_user("alice")
        for _ in range(2):
            wrong = await harness.request("POST", V3 + "/login", password_login("alice", "wrong"))
            self.assertEqual(wrong.code, 403)
        locked = await harness.request("POST", V3 + "/login", password_login("alice"))
        self.assertEqual((locked.code, locked.json()["errcode"]), (429, "M_LIMIT_EXCEEDED"))
        self.assertGreater(locked.json()["retry_after_ms"], 0)
        harness.clock.advance(2)
        unlocked = await harness.request("POST", V3 + "/login", password_login("alice"))
        self.assertEqual(unlocked.code, 200)

    @deferred_test
    async def test_login_rate_limited_per_account(self):
        """Logins to one account are limited whatever the address."""
        harness = await ClientApiHarness.create(self, rate_limits=LoginRateLimits(account=(0.01, 1)))
        await harness.register_user("alice")
        first = await harness.request("POST", V3 + "/login", password_login("alice"), peer_host="10.0.0.1")
        self.assertEqual(first.code, 200)
        second = await harness.request("POST", V3 + "/login", password_login("ALICE"), peer_host="10.0.0.2")
        self.assertEqual((second.code, second.json()["errcode"]), (429, "M_LIMIT_EXCEEDED"))


class TokenAndLogoutTests(AccountTestCase):
    @deferred_test
    async def test_whoami(self):
        """/account/whoami names the token's user and device, and says it is not a guest."""
        response = await self.request("GET", "/account/whoami", token=self.alice.access_token)
        self.assertEqual(response.code, 200)
        validate_response("client-server/whoami.yaml", "/account/whoami", "get", 200, response.json())
        self.assertEqual(response.json(), {"user_id": self.alice.user_id, "device_id": self.alice.device_id,
                                           "is_guest": False})

    @deferred_test
    async def test_missing_and_unknown_tokens(self):
        """No token gives 401 M_MISSING_TOKEN; an unknown one 401 M_UNKNOWN_TOKEN with soft_logout false."""
        missing = await self.request("GET", "/account/whoami")
        self.assert_error(missing, 401, "M_MISSING_TOKEN")
        unknown = await self.request("GET", "/account/whoami", token="mxr_forged")
        self.assert_error(unknown, 401, "M_UNKNOWN_TOKEN")
        self.assertIs(unknown.json()["soft_logout"], False)
        validate_response("client-server/whoami.yaml", "/account/whoami", "get", 401, unknown.json())

    @deferred_test
    async def test_query_string_token_still_works(self):
        """The deprecated ?access_token= form authenticates too."""
        response = await self.request("GET", f"/account/whoami?access_token={self.alice.access_token}")
        self.assertEqual(response.json()["user_id"], self.alice.user_id)

    @deferred_test
    async def test_logout_ends_the_token_and_its_device(self):
        """After /logout the token is refused and its device is gone; other sessions keep working."""
        other = await self.request("POST", "/login", password_login("alice"))
        response = await self.request("POST", "/logout", token=self.alice.access_token)
        self.assertEqual((response.code, response.json()), (200, {}))
        validate_response("client-server/logout.yaml", "/logout", "post", 200, response.json())
        self.assertFalse(await self.token_works(self.alice.access_token))
        other_token = other.json()["access_token"]
        self.assertTrue(await self.token_works(other_token))
        devices = await self.request("GET", "/devices", token=other_token)
        self.assertEqual([d["device_id"] for d in devices.json()["devices"]], [other.json()["device_id"]])

    @deferred_test
    async def test_logout_accepts_an_empty_json_object(self):
        """Clients may send '{}' to /logout instead of no body."""
        response = await self.request("POST", "/logout", {}, token=self.alice.access_token)
        self.assertEqual(response.code, 200)
        self.assertFalse(await self.token_works(self.alice.access_token))

    @deferred_test
    async def test_logout_needs_a_valid_token(self):
        """/logout with a token already logged out gets 401 M_UNKNOWN_TOKEN."""
        await self.request("POST", "/logout", token=self.alice.access_token)
        again = await self.request("POST", "/logout", token=self.alice.access_token)
        self.assert_error(again, 401, "M_UNKNOWN_TOKEN")

    @deferred_test
    async def test_logout_all_ends_every_session(self):
        """/logout/all ends this and every other token of the user and deletes all devices; others are untouched."""
        other = await self.request("POST", "/login", password_login("alice"))
        bob = await self.harness.register_user("bob")
        response = await self.request("POST", "/logout/all", token=self.alice.access_token)
        self.assertEqual((response.code, response.json()), (200, {}))
        self.assertFalse(await self.token_works(self.alice.access_token))
        self.assertFalse(await self.token_works(other.json()["access_token"]))
        self.assertEqual(await self.harness.store.accounts.get_devices(self.alice.user_id), {})
        self.assertTrue(await self.token_works(bob.access_token))


class RegistrationTests(AccountTestCase):
    harness_options = {"registration": OPEN_REGISTRATION}

    async def register(self, body, kind=None, **kwargs):
        path = "/register" if kind is None else f"/register?kind={kind}"
        return await self.request("POST", path, body, **kwargs)

    async def complete_registration(self, body):
        """Go through the dummy UIA stage; returns the final response."""
        first = await self.register(body)
        self.assertEqual(first.code, 401, first.json())
        return await self.register(dict(body, auth={"type": "m.login.dummy", "session": first.json()["session"]}))

    @deferred_test
    async def test_first_call_asks_for_the_dummy_stage(self):
        """Without auth, /register answers 401 with one m.login.dummy flow, params and a session, no errcode."""
        response = await self.register({"username": "bob", "password": PASSWORD})
        self.assertEqual(response.code, 401)
        body = response.json()
        validate_response("client-server/registration.yaml", "/register", "post", 401, body)
        self.assertEqual(body["flows"], [{"stages": ["m.login.dummy"]}])
        self.assertEqual(body["params"], {})
        self.assertIsInstance(body["session"], str)
        self.assertNotIn("errcode", body)
        self.assertNotIn("completed", body)

    @deferred_test
    async def test_dummy_stage_registers_and_logs_in(self):
        """Completing the dummy stage creates @bob with a working token and a device; the password logs in."""
        response = await self.complete_registration({"username": "bob", "password": PASSWORD,
                                                     "initial_device_display_name": "Bob's laptop"})
        self.assertEqual(response.code, 200, response.json())
        body = response.json()
        validate_response("client-server/registration.yaml", "/register", "post", 200, body)
        self.assertEqual(body["user_id"], "@bob:test.example")
        whoami = await self.request("GET", "/account/whoami", token=body["access_token"])
        self.assertEqual(whoami.json()["device_id"], body["device_id"])
        device = await self.request("GET", f"/devices/{body['device_id']}", token=body["access_token"])
        self.assertEqual(device.json()["display_name"], "Bob's laptop")
        login = await self.request("POST", "/login", password_login("bob"))
        self.assertEqual(login.code, 200)
        profile = await self.harness.store.accounts.get_profile("@bob:test.example")
        self.assertEqual(profile.displayname, "bob")

    @deferred_test
    async def test_username_is_lower_cased(self):
        """Registering 'Bob' gives @bob: the username is mapped onto the localpart grammar."""
        response = await self.complete_registration({"username": "Bob", "password": PASSWORD})
        self.assertEqual(response.json()["user_id"], "@bob:test.example")

    @deferred_test
    async def test_chosen_device_id_and_inhibit_login(self):
        """device_id is honoured; with inhibit_login only user_id comes back and no device is made."""
        chosen = await self.complete_registration({"username": "carol", "password": PASSWORD, "device_id": "CPHONE"})
        self.assertEqual(chosen.json()["device_id"], "CPHONE")
        inhibited = await self.complete_registration({"username": "dave", "password": PASSWORD,
                                                      "inhibit_login": True})
        self.assertEqual(inhibited.json(), {"user_id": "@dave:test.example"})
        validate_response("client-server/registration.yaml", "/register", "post", 200, inhibited.json())
        self.assertEqual(await self.harness.store.accounts.get_devices("@dave:test.example"), {})

    @deferred_test
    async def test_generated_localpart_without_username(self):
        """Without a username the server picks a valid, unused localpart."""
        first = await self.complete_registration({"password": PASSWORD})
        second = await self.complete_registration({"password": PASSWORD})
        self.assertEqual(first.code, 200)
        user_ids = {first.json()["user_id"], second.json()["user_id"]}
        self.assertEqual(len(user_ids), 2)
        for user_id in user_ids:
            localpart, server = user_id[1:].split(":")
            self.assertTrue(is_valid_localpart(localpart), localpart)
            self.assertEqual(server, "test.example")

    @deferred_test
    async def test_username_problems_come_before_uia(self):
        """An invalid or taken username is refused with 400 before any 401 is given."""
        invalid = await self.register({"username": "not valid!", "password": PASSWORD})
        self.assert_error(invalid, 400, "M_INVALID_USERNAME")
        validate_response("client-server/registration.yaml", "/register", "post", 400, invalid.json())
        taken = await self.register({"username": "alice", "password": PASSWORD})
        self.assert_error(taken, 400, "M_USER_IN_USE")
        taken_upper = await self.register({"username": "ALICE", "password": PASSWORD})
        self.assert_error(taken_upper, 400, "M_USER_IN_USE")
        too_long = await self.register({"username": "x" * 250, "password": PASSWORD})
        self.assert_error(too_long, 400, "M_INVALID_USERNAME")

    @deferred_test
    async def test_username_taken_during_uia(self):
        """If someone takes the name while the client is authenticating, the final call gets M_USER_IN_USE."""
        first = await self.register({"username": "erin", "password": PASSWORD})
        await self.harness.register_user("erin")
        final = await self.register({"username": "erin", "password": PASSWORD,
                                     "auth": {"type": "m.login.dummy", "session": first.json()["session"]}})
        self.assert_error(final, 400, "M_USER_IN_USE")

    @deferred_test
    async def test_malformed_registration_requests(self):
        """Wrong types and broken JSON get 400s; a wrong kind gets M_INVALID_PARAM."""
        cases = [
            (b"\xff\xfe", None, "M_NOT_JSON"),
            ({"username": 5}, None, "M_BAD_JSON"),
            ({"username": "frank", "password": 5}, None, "M_BAD_JSON"),
            ({"username": "frank", "password": "x" * 513}, None, "M_INVALID_PARAM"),
            ({"username": "frank", "inhibit_login": "yes"}, None, "M_BAD_JSON"),
            ({"username": "frank", "device_id": ""}, None, "M_INVALID_PARAM"),
            ({"username": "frank", "auth": "dummy"}, None, "M_BAD_JSON"),
            ({"username": "frank"}, "admin", "M_INVALID_PARAM"),
        ]
        for body, kind, errcode in cases:
            response = await self.register(body, kind=kind)
            self.assert_error(response, 400, errcode)

    @deferred_test
    async def test_uia_stage_mistakes(self):
        """An unknown session is 400; an unoffered stage is 401 with an errcode and the same session."""
        unknown = await self.register({"username": "gina", "auth": {"type": "m.login.dummy", "session": "nope"}})
        self.assert_error(unknown, 400, "M_INVALID_PARAM")
        first = await self.register({"username": "gina"})
        session = first.json()["session"]
        wrong_stage = await self.register({"username": "gina", "auth": password_auth("alice", session)})
        self.assertEqual(wrong_stage.code, 401)
        body = wrong_stage.json()
        validate_response("client-server/registration.yaml", "/register", "post", 401, body)
        self.assertEqual(body["session"], session)
        self.assertEqual(body["errcode"], "M_UNRECOGNIZED")
        done = await self.register({"username": "gina", "auth": {"type": "m.login.dummy", "session": session}})
        self.assertEqual(done.code, 200)

    @deferred_test
    async def test_dummy_stage_without_session_completes_at_once(self):
        """A client may send the dummy stage straight away; the server opens the session itself."""
        response = await self.register({"username": "hank", "auth": {"type": "m.login.dummy"}})
        self.assertEqual((response.code, response.json()["user_id"]), (200, "@hank:test.example"))

    @deferred_test
    async def test_guests_are_refused(self):
        """kind=guest gets 403 M_GUEST_ACCESS_FORBIDDEN."""
        response = await self.register({}, kind="guest")
        self.assert_error(response, 403, "M_GUEST_ACCESS_FORBIDDEN")

    @deferred_test
    async def test_username_availability(self):
        """/register/available says true for a free name and 400 with a reason otherwise."""
        free = await self.request("GET", "/register/available?username=zed")
        self.assertEqual((free.code, free.json()), (200, {"available": True}))
        validate_response("client-server/registration.yaml", "/register/available", "get", 200, free.json())
        taken = await self.request("GET", "/register/available?username=alice")
        self.assert_error(taken, 400, "M_USER_IN_USE")
        invalid = await self.request("GET", "/register/available?username=bad%20name")
        self.assert_error(invalid, 400, "M_INVALID_USERNAME")
        missing = await self.request("GET", "/register/available")
        self.assert_error(missing, 400, "M_MISSING_PARAM")


class ClosedRegistrationTests(unittest.TestCase):
    @deferred_test
    async def test_registration_is_disabled_by_default(self):
        """With the default configuration /register gets 403 M_FORBIDDEN 'Registration is disabled'."""
        harness = await ClientApiHarness.create(self)
        response = await harness.request("POST", V3 + "/register", {"username": "bob", "password": PASSWORD})
        self.assertEqual(response.code, 403)
        validate_response("client-server/registration.yaml", "/register", "post", 403, response.json())
        self.assertEqual(response.json(), {"errcode": "M_FORBIDDEN", "error": "Registration is disabled"})

    @deferred_test
    async def test_username_availability_is_not_answered_when_closed(self):
        """With registration closed, /register/available is 403 rather than revealing which accounts exist."""
        harness = await ClientApiHarness.create(self)
        await harness.register_user("alice")
        for username in ("alice", "free"):
            response = await harness.request("GET", V3 + f"/register/available?username={username}")
            self.assertEqual((response.code, response.json()["errcode"]), (403, "M_FORBIDDEN"))

    @deferred_test
    async def test_token_only_registration_is_refused(self):
        """registration_requires_token is not supported, so such a server refuses /register."""
        config = RegistrationConfig(enable_registration=True, registration_requires_token=True)
        harness = await ClientApiHarness.create(self, registration=config)
        response = await harness.request("POST", V3 + "/register", {"username": "bob"})
        self.assertEqual((response.code, response.json()["errcode"]), (403, "M_FORBIDDEN"))

    @deferred_test
    async def test_registration_rate_limited_per_address(self):
        """Account creation beyond rc_registration's burst from one address gets 429."""
        harness = await ClientApiHarness.create(self, registration=OPEN_REGISTRATION,
                                                rate_limits=LoginRateLimits(registration=(0.1, 1)))
        dummy = {"type": "m.login.dummy"}
        first = await harness.request("POST", V3 + "/register", {"username": "a1", "auth": dummy})
        self.assertEqual(first.code, 200)
        second = await harness.request("POST", V3 + "/register", {"username": "a2", "auth": dummy})
        self.assertEqual((second.code, second.json()["errcode"]), (429, "M_LIMIT_EXCEEDED"))
        self.assertEqual(second.header("retry-after"), "10")


class DeviceTests(AccountTestCase):
    @deferred_test
    async def setUp(self):
        await super().setUp()
        self.phone = await self.request("POST", "/login", password_login(
            "alice", device_id="PHONE", initial_device_display_name="Phone"))

    async def delete_device(self, device_id, auth=None, token=None):
        body = {} if auth is None else {"auth": auth}
        return await self.request("DELETE", f"/devices/{device_id}", body, token=token or self.alice.access_token)

    @deferred_test
    async def test_list_and_get_devices(self):
        """GET /devices lists every device of the user; GET /devices/{id} one of them."""
        listed = await self.request("GET", "/devices", token=self.alice.access_token)
        self.assertEqual(listed.code, 200)
        validate_response("client-server/device_management.yaml", "/devices", "get", 200, listed.json())
        self.assertEqual(sorted(d["device_id"] for d in listed.json()["devices"]),
                         sorted(["PHONE", self.alice.device_id]))
        one = await self.request("GET", "/devices/PHONE", token=self.alice.access_token)
        validate_response("client-server/device_management.yaml", "/devices/{deviceId}", "get", 200, one.json())
        self.assertEqual(one.json(), {"device_id": "PHONE", "display_name": "Phone", "last_seen_ip": "127.0.0.7",
                                      "last_seen_ts": 1_700_000_000_000})
        made_by_service = await self.request("GET", f"/devices/{self.alice.device_id}", token=self.alice.access_token)
        self.assertEqual(made_by_service.json(), {"device_id": self.alice.device_id})

    @deferred_test
    async def test_other_users_devices_are_not_found(self):
        """A device of another user, or none at all, is 404 M_NOT_FOUND."""
        bob = await self.harness.register_user("bob")
        for device_id in ("PHONE", "NOSUCH"):
            response = await self.request("GET", f"/devices/{device_id}", token=bob.access_token)
            self.assert_error(response, 404, "M_NOT_FOUND")

    @deferred_test
    async def test_rename_device(self):
        """PUT /devices/{id} sets the display name; an empty body leaves it; unknown devices are 404."""
        renamed = await self.request("PUT", "/devices/PHONE", {"display_name": "Old phone"},
                                     token=self.alice.access_token)
        self.assertEqual((renamed.code, renamed.json()), (200, {}))
        await self.request("PUT", "/devices/PHONE", {}, token=self.alice.access_token)
        one = await self.request("GET", "/devices/PHONE", token=self.alice.access_token)
        self.assertEqual(one.json()["display_name"], "Old phone")
        unknown = await self.request("PUT", "/devices/NOSUCH", {"display_name": "x"}, token=self.alice.access_token)
        self.assert_error(unknown, 404, "M_NOT_FOUND")
        for body, errcode in (({"display_name": 3}, "M_BAD_JSON"), ({"display_name": "x" * 101}, "M_INVALID_PARAM"),
                              (b"nope", "M_NOT_JSON")):
            response = await self.request("PUT", "/devices/PHONE", body, token=self.alice.access_token)
            self.assert_error(response, 400, errcode)

    @deferred_test
    async def test_delete_device_needs_the_password(self):
        """DELETE /devices/{id} asks for m.login.password, refuses a wrong one (401 + errcode), then deletes."""
        first = await self.delete_device("PHONE")
        self.assertEqual(first.code, 401)
        validate_response("client-server/device_management.yaml", "/devices/{deviceId}", "delete", 401,
                          first.json())
        self.assertEqual(first.json()["flows"], [{"stages": ["m.login.password"]}])
        session = first.json()["session"]
        wrong = await self.delete_device("PHONE", password_auth("alice", session, "wrong"))
        self.assertEqual((wrong.code, wrong.json()["errcode"], wrong.json()["session"]), (401, "M_FORBIDDEN", session))
        self.assertTrue(await self.token_works(self.phone.json()["access_token"]))
        right = await self.delete_device("PHONE", password_auth("alice", session))
        self.assertEqual((right.code, right.json()), (200, {}))
        self.assertFalse(await self.token_works(self.phone.json()["access_token"]))
        gone = await self.request("GET", "/devices/PHONE", token=self.alice.access_token)
        self.assertEqual(gone.code, 404)

    @deferred_test
    async def test_delete_device_with_no_body(self):
        """A DELETE without any body starts UIA like one with '{}'."""
        response = await self.request("DELETE", "/devices/PHONE", token=self.alice.access_token)
        self.assertEqual(response.code, 401)
        self.assertIn("session", response.json())

    @deferred_test
    async def test_someone_elses_password_does_not_do(self):
        """Bob's correct password does not complete Alice's UIA session."""
        await self.harness.register_user("bob")
        first = await self.delete_device("PHONE")
        attempt = await self.delete_device("PHONE", password_auth("bob", first.json()["session"]))
        self.assertEqual((attempt.code, attempt.json()["errcode"]), (401, "M_FORBIDDEN"))
        self.assertTrue(await self.token_works(self.phone.json()["access_token"]))

    @deferred_test
    async def test_session_cannot_authorise_another_operation(self):
        """A session completed for deleting PHONE cannot be replayed to delete another device."""
        first = await self.delete_device("PHONE")
        session = first.json()["session"]
        await self.delete_device("PHONE", password_auth("alice", session))
        replay = await self.delete_device(self.alice.device_id, {"session": session})
        self.assert_error(replay, 403, "M_FORBIDDEN")
        self.assertTrue(await self.token_works(self.alice.access_token))

    @deferred_test
    async def test_bob_cannot_use_alices_session(self):
        """A UIA session belongs to the user who started it."""
        bob = await self.harness.register_user("bob")
        first = await self.delete_device("PHONE")
        stolen = await self.delete_device("PHONE", password_auth("bob", first.json()["session"]),
                                          token=bob.access_token)
        self.assert_error(stolen, 403, "M_FORBIDDEN")

    @deferred_test
    async def test_sessions_expire(self):
        """A UIA session is unknown after 15 minutes."""
        first = await self.delete_device("PHONE")
        self.harness.clock.advance(15 * 60)
        late = await self.delete_device("PHONE", password_auth("alice", first.json()["session"]))
        self.assert_error(late, 400, "M_INVALID_PARAM")

    @deferred_test
    async def test_bulk_delete(self):
        """POST /delete_devices deletes several devices (unknown ones are fine) after the password stage."""
        await self.request("POST", "/login", password_login("alice", device_id="TABLET"))
        body = {"devices": ["PHONE", "TABLET", "NEVER"]}
        first = await self.request("POST", "/delete_devices", body, token=self.alice.access_token)
        self.assertEqual(first.code, 401)
        validate_response("client-server/device_management.yaml", "/delete_devices", "post", 401, first.json())
        done = await self.request("POST", "/delete_devices",
                                  dict(body, auth=password_auth("alice", first.json()["session"])),
                                  token=self.alice.access_token)
        self.assertEqual((done.code, done.json()), (200, {}))
        devices = await self.harness.store.accounts.get_devices(self.alice.user_id)
        self.assertEqual(list(devices), [self.alice.device_id])

    @deferred_test
    async def test_bulk_delete_bad_input(self):
        """delete_devices needs a list of strings."""
        for body, errcode in (({}, "M_MISSING_PARAM"), ({"devices": "PHONE"}, "M_BAD_JSON"),
                              ({"devices": [1]}, "M_BAD_JSON")):
            response = await self.request("POST", "/delete_devices", body, token=self.alice.access_token)
            self.assert_error(response, 400, errcode)

    @deferred_test
    async def test_devices_need_a_token(self):
        """Every device endpoint refuses requests without a token."""
        for method, path in (("GET", "/devices"), ("GET", "/devices/PHONE"), ("PUT", "/devices/PHONE"),
                             ("DELETE", "/devices/PHONE"), ("POST", "/delete_devices")):
            response = await self.request(method, path, {})
            self.assert_error(response, 401, "M_MISSING_TOKEN")


class PasswordChangeTests(AccountTestCase):
    async def change_password(self, body, token=None):
        return await self.request("POST", "/account/password", body, token=token)

    @deferred_test
    async def test_change_password_logs_out_other_devices(self):
        """After a password change the old password fails, the new works, and only this session survives."""
        other = await self.request("POST", "/login", password_login("alice"))
        first = await self.change_password({"new_password": "new horse"}, token=self.alice.access_token)
        self.assertEqual(first.code, 401)
        validate_response("client-server/password_management.yaml", "/account/password", "post", 401,
                          first.json())
        done = await self.change_password({"new_password": "new horse",
                                           "auth": password_auth("alice", first.json()["session"])},
                                          token=self.alice.access_token)
        self.assertEqual((done.code, done.json()), (200, {}))
        self.assertTrue(await self.token_works(self.alice.access_token))
        self.assertFalse(await self.token_works(other.json()["access_token"]))
        self.assertEqual(list(await self.harness.store.accounts.get_devices(self.alice.user_id)),
                         [self.alice.device_id])
        old = await self.request("POST", "/login", password_login("alice"))
        self.assertEqual(old.code, 403)
        new = await self.request("POST", "/login", password_login("alice", "new horse"))
        self.assertEqual(new.code, 200)

    @deferred_test
    async def test_change_password_keeping_other_devices(self):
        """With logout_devices false, other sessions keep working."""
        other = await self.request("POST", "/login", password_login("alice"))
        first = await self.change_password({"new_password": "new horse"}, token=self.alice.access_token)
        await self.change_password({"new_password": "new horse", "logout_devices": False,
                                    "auth": password_auth("alice", first.json()["session"])},
                                   token=self.alice.access_token)
        self.assertTrue(await self.token_works(other.json()["access_token"]))

    @deferred_test
    async def test_change_password_without_a_token(self):
        """Without an access token the password stage says whose password changes; all sessions end."""
        first = await self.change_password({"new_password": "new horse"})
        self.assertEqual(first.code, 401)
        done = await self.change_password({"new_password": "new horse",
                                           "auth": password_auth("@alice:test.example", first.json()["session"])})
        self.assertEqual(done.code, 200)
        self.assertFalse(await self.token_works(self.alice.access_token))
        new = await self.request("POST", "/login", password_login("alice", "new horse"))
        self.assertEqual(new.code, 200)

    @deferred_test
    async def test_change_password_bad_input(self):
        """new_password is required and must be a string; logout_devices must be a boolean."""
        for body, errcode in (({}, "M_MISSING_PARAM"), ({"new_password": 1}, "M_BAD_JSON"),
                              ({"new_password": "x", "logout_devices": "no"}, "M_BAD_JSON")):
            response = await self.change_password(body, token=self.alice.access_token)
            self.assert_error(response, 400, errcode)


class DeactivationTests(AccountTestCase):
    @deferred_test
    async def test_deactivate(self):
        """Deactivation after the password stage ends all sessions, blocks login, keeps the name taken."""
        first = await self.request("POST", "/account/deactivate", {}, token=self.alice.access_token)
        self.assertEqual(first.code, 401)
        done = await self.request("POST", "/account/deactivate",
                                  {"auth": password_auth("alice", first.json()["session"])},
                                  token=self.alice.access_token)
        self.assertEqual(done.code, 200)
        validate_response("client-server/account_deactivation.yaml", "/account/deactivate", "post", 200,
                          done.json())
        self.assertEqual(done.json(), {"id_server_unbind_result": "success"})
        self.assertFalse(await self.token_works(self.alice.access_token))
        login = await self.request("POST", "/login", password_login("alice"))
        self.assertEqual(login.code, 403)
        self.assertEqual(self.harness.deactivated, [(self.alice.user_id, False)])
        with self.assertRaises(MatrixError) as caught:
            await self.harness.registrar.register_user("alice", "another")
        self.assertEqual(caught.exception.errcode, "M_USER_IN_USE")

    @deferred_test
    async def test_deactivate_with_erase(self):
        """The erase flag is handed to the deactivation listeners; a non-boolean is 400."""
        bad = await self.request("POST", "/account/deactivate", {"erase": "yes"}, token=self.alice.access_token)
        self.assert_error(bad, 400, "M_BAD_JSON")
        first = await self.request("POST", "/account/deactivate", {"erase": True}, token=self.alice.access_token)
        await self.request("POST", "/account/deactivate",
                           {"erase": True, "auth": password_auth("alice", first.json()["session"])},
                           token=self.alice.access_token)
        self.assertEqual(self.harness.deactivated, [(self.alice.user_id, True)])


class InteractiveAuthTests(AccountTestCase):
    """The UIA rules that need flows with more than one stage, driven through the service."""

    async def attempt(self, auth, flows):
        try:
            return "done", await self.harness.interactive_auth.authenticate(auth, flows, "test-op",
                                                                           user_id=self.alice.user_id)
        except InteractiveAuthIncomplete as incomplete:
            return "incomplete", incomplete.to_json()

    @deferred_test
    async def test_stages_must_follow_the_flow_order(self):
        """In a dummy-then-password flow, the password first is refused; in order, both complete."""
        flows = [["m.login.dummy", "m.login.password"]]
        _, start = await self.attempt(None, flows)
        session = start["session"]
        _, out_of_order = await self.attempt(password_auth("alice", session), flows)
        self.assertEqual(out_of_order["errcode"], "M_UNRECOGNIZED")
        self.assertNotIn("completed", out_of_order)
        _, halfway = await self.attempt({"type": "m.login.dummy", "session": session}, flows)
        self.assertEqual(halfway["completed"], ["m.login.dummy"])
        self.assertNotIn("errcode", halfway)
        validate_schema("api/client-server/definitions/auth_response.yaml", halfway)
        outcome = await self.attempt(password_auth("alice", session), flows)
        self.assertEqual(outcome, ("done", self.alice.user_id))

    @deferred_test
    async def test_completed_session_retry_gives_the_result(self):
        """Retrying with a completed session (auth holding only the session) succeeds again."""
        flows = [["m.login.password"]]
        _, start = await self.attempt(None, flows)
        await self.attempt(password_auth("alice", start["session"]), flows)
        self.assertEqual(await self.attempt({"session": start["session"]}, flows), ("done", self.alice.user_id))

    @deferred_test
    async def test_wrong_passwords_are_rate_limited(self):
        """With a failed-attempts limit, repeated wrong passwords in UIA get 429."""
        harness = await ClientApiHarness.create(self, rate_limits=LoginRateLimits(failed_attempts=(0.1, 1)))
        await harness.register_user("alice")
        flows = [["m.login.password"]]
        with self.assertRaises(InteractiveAuthIncomplete):
            await harness.interactive_auth.authenticate(password_auth("alice", None, "wrong"), flows, "op")
        with self.assertRaises(MatrixError) as caught:
            await harness.interactive_auth.authenticate(password_auth("alice", None), flows, "op")
        self.assertEqual(caught.exception.errcode, "M_LIMIT_EXCEEDED")


class MemoryBoundsTests(AccountTestCase):
    """Anyone can open UIA sessions and ask for nonces, so both are capped."""

    @deferred_test
    async def test_oldest_sessions_are_forgotten_beyond_the_cap(self):
        """With room for two sessions, opening a third forgets the first."""
        uia = InteractiveAuthenticator(self.harness.credentials, self.harness.clock, random.Random(1), max_sessions=2)
        sessions = []
        for _ in range(3):
            with self.assertRaises(InteractiveAuthIncomplete) as caught:
                await uia.authenticate(None, [["m.login.dummy"]], "register")
            sessions.append(caught.exception.session_id)
        with self.assertRaises(MatrixError) as caught:
            await uia.authenticate({"type": "m.login.dummy", "session": sessions[0]}, [["m.login.dummy"]], "register")
        self.assertEqual(caught.exception.errcode, "M_INVALID_PARAM")
        self.assertIsNone(await uia.authenticate({"type": "m.login.dummy", "session": sessions[2]},
                                                 [["m.login.dummy"]], "register"))

    @deferred_test
    async def test_oldest_nonces_are_forgotten_beyond_the_cap(self):
        """With room for two nonces, issuing a third makes the first unknown."""
        registrar = AccountRegistrar(
            self.harness.store.accounts, self.harness.hasher, self.harness.login, self.harness.interactive_auth,
            self.harness.clock, random.Random(2), "test.example",
            RegistrationConfig(registration_shared_secret=SECRET), max_nonces=2,
        )
        nonces = [registrar.issue_registration_nonce() for _ in range(3)]
        self.assertEqual(len(set(nonces)), 3)
        for nonce, expected in ((nonces[0], "M_UNKNOWN"), (nonces[1], "M_FORBIDDEN")):
            with self.assertRaises(MatrixError) as caught:
                await registrar.register_with_shared_secret(
                    {"nonce": nonce, "username": "u", "password": "p", "mac": "0" * 40})
            self.assertEqual(caught.exception.errcode, expected)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)


class IdentifierParsingTests(unittest.TestCase):
    @given(st.dictionaries(st.sampled_from(["identifier", "user", "medium", "address", "type"]), _JSON)
           | st.fixed_dictionaries({"identifier": st.fixed_dictionaries(
               {"type": st.sampled_from(["m.id.user", "m.id.thirdparty", "m.id.phone", "x"]), "user": _JSON})}))
    def test_any_login_body_gives_a_user_text_or_a_client_error(self, body):
        """Whatever JSON a client sends, identifier parsing names a user or refuses with a 4xx Matrix error."""
        try:
            user_text = user_text_from_auth_dict(body)
        except MatrixError as error:
            self.assertIn(error.code, (400, 403))
        else:
            self.assertIsInstance(user_text, str)

    @given(st.text(max_size=40))
    def test_any_user_text_maps_to_local_user_ids_only(self, text):
        """Any typed user text maps to zero or more user IDs on our server, never raising."""
        checker = CredentialChecker(None, None, "test.example")
        for user_id in checker.candidate_user_ids(text):
            self.assertTrue(user_id.startswith("@"))
            self.assertTrue(user_id.endswith(":test.example"))
        self.assertEqual(checker.candidate_user_ids("@Bob:test.example"),
                         ["@Bob:test.example", "@bob:test.example"])
        self.assertEqual(checker.candidate_user_ids("@bob:other.example"), [])


class SharedSecretRegistrationTests(unittest.TestCase):
    path = "/_synapse/admin/v1/register"

    @deferred_test
    async def setUp(self):
        self.harness = await ClientApiHarness.create(self, registration=RegistrationConfig(
            registration_shared_secret=SECRET))

    async def nonce(self):
        response = await self.harness.request("GET", self.path)
        self.assertEqual(response.code, 200)
        return response.json()["nonce"]

    def signed(self, nonce, username="root", password=PASSWORD, admin=True, secret=SECRET, **extra):
        body = {"nonce": nonce, "username": username, "password": password, "admin": admin,
                "mac": compute_registration_mac(secret, nonce, username, password, admin, extra.get("user_type"))}
        body.update(extra)
        return body

    @deferred_test
    async def test_register_admin_with_shared_secret(self):
        """A correctly signed request creates an admin (open registration being off) with a working token."""
        response = await self.harness.request("POST", self.path, self.signed(await self.nonce(),
                                                                            displayname="The Root"))
        self.assertEqual(response.code, 200, response.json())
        body = response.json()
        self.assertEqual(set(body), {"user_id", "access_token", "device_id", "home_server"})
        self.assertEqual((body["user_id"], body["home_server"]), ("@root:test.example", "test.example"))
        whoami = await self.harness.request("GET", V3 + "/account/whoami", token=body["access_token"])
        self.assertEqual(whoami.json()["device_id"], body["device_id"])
        user = await self.harness.store.accounts.get_user("@root:test.example")
        self.assertTrue(user.is_admin)
        profile = await self.harness.store.accounts.get_profile("@root:test.example")
        self.assertEqual(profile.displayname, "The Root")
        login = await self.harness.request("POST", V3 + "/login", password_login("root"))
        self.assertEqual(login.code, 200)

    @deferred_test
    async def test_user_type_is_covered_by_the_mac(self):
        """A bot user_type is accepted when signed, and stored; an unknown user_type is 400."""
        good = await self.harness.request("POST", self.path, self.signed(await self.nonce(), "bot1", admin=False,
                                                                        user_type="bot"))
        self.assertEqual(good.code, 200)
        self.assertEqual((await self.harness.store.accounts.get_user("@bot1:test.example")).user_type, "bot")
        bad = await self.harness.request("POST", self.path, self.signed(await self.nonce(), "bot2", user_type="x"))
        self.assertEqual((bad.code, bad.json()["errcode"]), (400, "M_INVALID_PARAM"))

    @deferred_test
    async def test_bad_mac_is_403_and_burns_the_nonce(self):
        """A MAC made with the wrong secret gets 403; the nonce cannot then be reused, even correctly signed."""
        nonce = await self.nonce()
        bad = await self.harness.request("POST", self.path, self.signed(nonce, secret="wrong"))
        self.assertEqual((bad.code, bad.json()["errcode"]), (403, "M_FORBIDDEN"))
        reused = await self.harness.request("POST", self.path, self.signed(nonce))
        self.assertEqual((reused.code, reused.json()["errcode"]), (400, "M_UNKNOWN"))
        self.assertIsNone(await self.harness.store.accounts.get_user("@root:test.example"))

    @deferred_test
    async def test_admin_flag_is_signed(self):
        """Flipping admin after signing breaks the MAC."""
        body = self.signed(await self.nonce(), admin=False)
        body["admin"] = True
        response = await self.harness.request("POST", self.path, body)
        self.assertEqual(response.code, 403)

    @deferred_test
    async def test_nonce_is_single_use_and_expires(self):
        """A used nonce is refused, and so is one older than 60 seconds."""
        nonce = await self.nonce()
        first = await self.harness.request("POST", self.path, self.signed(nonce, "one"))
        self.assertEqual(first.code, 200)
        again = await self.harness.request("POST", self.path, self.signed(nonce, "two"))
        self.assertEqual((again.code, again.json()["errcode"]), (400, "M_UNKNOWN"))
        old = await self.nonce()
        self.harness.clock.advance(60)
        late = await self.harness.request("POST", self.path, self.signed(old, "three"))
        self.assertEqual((late.code, late.json()["errcode"]), (400, "M_UNKNOWN"))
        fresh = await self.nonce()
        self.harness.clock.advance(59)
        in_time = await self.harness.request("POST", self.path, self.signed(fresh, "four"))
        self.assertEqual(in_time.code, 200)

    @deferred_test
    async def test_username_checks(self):
        """A taken username is 400 M_USER_IN_USE and an invalid one 400 M_INVALID_USERNAME."""
        await self.harness.register_user("taken")
        taken = await self.harness.request("POST", self.path, self.signed(await self.nonce(), "taken"))
        self.assertEqual((taken.code, taken.json()["errcode"]), (400, "M_USER_IN_USE"))
        invalid = await self.harness.request("POST", self.path, self.signed(await self.nonce(), "bad name"))
        self.assertEqual((invalid.code, invalid.json()["errcode"]), (400, "M_INVALID_USERNAME"))

    @deferred_test
    async def test_malformed_requests(self):
        """Missing or mistyped fields get 400, never 500."""
        cases = [
            ({}, "M_MISSING_PARAM"),
            ({"nonce": 5}, "M_BAD_JSON"),
        ]
        for body, errcode in cases:
            response = await self.harness.request("POST", self.path, body)
            self.assertEqual((response.code, response.json()["errcode"]), (400, errcode))
        missing_mac = self.signed(await self.nonce())
        del missing_mac["mac"]
        response = await self.harness.request("POST", self.path, missing_mac)
        self.assertEqual((response.code, response.json()["errcode"]), (400, "M_MISSING_PARAM"))
        wrong_admin = self.signed(await self.nonce())
        wrong_admin["admin"] = "yes"
        response = await self.harness.request("POST", self.path, wrong_admin)
        self.assertEqual((response.code, response.json()["errcode"]), (400, "M_BAD_JSON"))

    @deferred_test
    async def test_disabled_without_a_secret(self):
        """Without registration_shared_secret both GET and POST get 403."""
        harness = await ClientApiHarness.create(self)
        get = await harness.request("GET", self.path)
        self.assertEqual((get.code, get.json()["errcode"]), (403, "M_FORBIDDEN"))
        post = await harness.request("POST", self.path, {"nonce": "x", "username": "a", "password": "b",
                                                         "mac": "c"})
        self.assertEqual((post.code, post.json()["errcode"]), (403, "M_FORBIDDEN"))


class _UrlopenResponse(io.BytesIO):
    """What ``urllib.request.urlopen`` returns, enough for :mod:`mxref.register_user`."""


class RegisterCommandTests(unittest.TestCase):
    """The ``mxref-register`` client (blocking, in a thread) against the real endpoint."""

    @deferred_test
    async def setUp(self):
        self.harness = await ClientApiHarness.create(self, registration=RegistrationConfig(
            registration_shared_secret=SECRET))

    def urlopen(self, http_request):
        """Carry one urllib request from the client's thread to the harness on the reactor thread."""
        path = urlsplit(http_request.full_url).path
        response = blockingCallFromThread(reactor, lambda: defer.ensureDeferred(
            self.harness.request(http_request.get_method(), path, http_request.data)))
        if response.code >= 400:
            raise urllib.error.HTTPError(http_request.full_url, response.code, "error", {},
                                         io.BytesIO(response.body))
        return _UrlopenResponse(response.body)

    @deferred_test
    async def test_mxref_register_creates_an_admin(self):
        """mxref-register's register_user fetches a nonce, signs, and gets an admin account back."""
        result = await threads.deferToThread(register_user, "http://test.example", SECRET, "cli", "pw", True,
                                             urlopen=self.urlopen)
        self.assertEqual(result["user_id"], "@cli:test.example")
        self.assertTrue((await self.harness.store.accounts.get_user("@cli:test.example")).is_admin)

    @deferred_test
    async def test_mxref_register_with_the_wrong_secret_fails(self):
        """With the wrong secret the command reports the server's 403."""
        with self.assertRaises(RegistrationFailed) as caught:
            await threads.deferToThread(register_user, "http://test.example", "wrong", "cli", "pw", False,
                                        urlopen=self.urlopen)
        self.assertIn("403", str(caught.exception))


class SynapseRegisterCommandTests(unittest.TestCase):
    """Synapse's own register_new_matrix_user against mxref's endpoint on a loopback port."""

    @deferred_test
    async def setUp(self):
        self.python = os.environ.get("MXREF_SYNAPSE_PYTHON")
        if not self.python:
            raise unittest.SkipTest("needs MXREF_SYNAPSE_PYTHON (an interpreter with matrix-synapse installed)")
        self.harness = await ClientApiHarness.create(self, registration=RegistrationConfig(
            registration_shared_secret=SECRET))
        self.port = reactor.listenTCP(0, self.harness.site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    async def run_command(self, *arguments):
        url = f"http://127.0.0.1:{self.port.getHost().port}"
        return await utils.getProcessOutputAndValue(
            self.python, ["-m", "synapse._scripts.register_new_matrix_user", *arguments, url], env=dict(os.environ))

    @deferred_test
    async def test_synapse_tool_registers_a_bot(self):
        """register_new_matrix_user -k ... -t bot --no-admin creates the user on mxref."""
        out, err, code = await self.run_command("-u", "synbot", "-p", "pw", "--no-admin", "-t", "bot", "-k", SECRET)
        self.assertEqual(code, 0, (out, err))
        user = await self.harness.store.accounts.get_user("@synbot:test.example")
        self.assertEqual((user.is_admin, user.user_type), (False, "bot"))

    @deferred_test
    async def test_synapse_tool_with_the_wrong_secret_fails(self):
        """With the wrong secret the tool exits non-zero and no account appears."""
        out, err, code = await self.run_command("-u", "synadmin", "-p", "pw", "-a", "-k", "wrong")
        self.assertNotEqual(code, 0)
        self.assertIsNone(await self.harness.store.accounts.get_user("@synadmin:test.example"))


#: A matrix-nio session run in a child process (nio needs asyncio; trial runs Twisted's default reactor).
NIO_SCRIPT = """
import asyncio, json, sys
from nio import AsyncClient, DeleteDevicesAuthResponse

async def main(url):
    steps = {}
    client = AsyncClient(url, "niouser")
    registered = await client.register("niouser", "nio password", "nio device")
    steps["register"] = [type(registered).__name__, registered.user_id]
    phone = AsyncClient(url, "@niouser:test.example")
    logged_in = await phone.login("nio password", device_name="phone")
    steps["login"] = [type(logged_in).__name__, phone.device_id]
    whoami = await phone.whoami()
    steps["whoami"] = [whoami.user_id, whoami.device_id]
    devices = await client.devices()
    steps["devices"] = sorted(device.id for device in devices.devices)
    asked = await client.delete_devices([phone.device_id])
    steps["delete_asks"] = isinstance(asked, DeleteDevicesAuthResponse)
    auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "niouser"},
            "password": "nio password", "session": asked.session}
    deleted = await client.delete_devices([phone.device_id], auth)
    steps["delete"] = type(deleted).__name__
    after = await phone.whoami()
    steps["phone_after"] = type(after).__name__
    logged_out = await client.logout()
    steps["logout"] = type(logged_out).__name__
    for c in (client, phone):
        await c.close()
    print(json.dumps(steps))

asyncio.run(main(sys.argv[1]))
"""


class NioClientTests(unittest.TestCase):
    """matrix-nio, a real client library, registers, logs in, manages devices and logs out against mxref."""

    @deferred_test
    async def setUp(self):
        try:
            import nio  # noqa: F401 (only checking that it is installed)
        except ImportError:
            raise unittest.SkipTest("matrix-nio is not installed (pip install -e .[test])")
        self.harness = await ClientApiHarness.create(self, registration=OPEN_REGISTRATION)
        self.port = reactor.listenTCP(0, self.harness.site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    @deferred_test
    async def test_nio_session(self):
        """nio's register (dummy UIA), login, whoami, devices, delete_devices (password UIA) and logout all work."""
        url = f"http://127.0.0.1:{self.port.getHost().port}"
        out, err, code = await utils.getProcessOutputAndValue(sys.executable, ["-c", NIO_SCRIPT, url],
                                                              env=dict(os.environ))
        self.assertEqual(code, 0, err.decode("utf-8", "replace")[-2000:])
        steps = json.loads(out.decode("utf-8").strip().splitlines()[-1])
        self.assertEqual(steps["register"], ["RegisterResponse", "@niouser:test.example"])
        self.assertEqual(steps["login"][0], "LoginResponse")
        phone = steps["login"][1]
        self.assertEqual(steps["whoami"], ["@niouser:test.example", phone])
        self.assertEqual(len(steps["devices"]), 2)
        self.assertIn(phone, steps["devices"])
        self.assertTrue(steps["delete_asks"])
        self.assertEqual(steps["delete"], "DeleteDevicesResponse")
        self.assertEqual(steps["phone_after"], "WhoamiError")
        self.assertEqual(steps["logout"], "LogoutResponse")


class RegisterUserServiceTests(AccountTestCase):
    @deferred_test
    async def test_register_user_for_console_and_modules(self):
        """register_user creates an account whatever the policy, with the localpart as default display name."""
        user_id = await self.harness.registrar.register_user("console", "pw")
        self.assertEqual(user_id, "@console:test.example")
        profile = await self.harness.store.accounts.get_profile(user_id)
        self.assertEqual(profile.displayname, "console")
        with self.assertRaises(MatrixError) as caught:
            await self.harness.registrar.register_user("console", "pw")
        self.assertEqual(caught.exception.errcode, "M_USER_IN_USE")
        with self.assertRaises(MatrixError) as caught:
            await self.harness.registrar.register_user("Upper", "pw")
        self.assertEqual(caught.exception.errcode, "M_INVALID_USERNAME")

    @deferred_test
    async def test_account_without_password_cannot_log_in(self):
        """An account created without a password cannot log in with any password."""
        await self.harness.registrar.register_user("nopass")
        response = await self.request("POST", "/login", password_login("nopass", ""))
        self.assertEqual(response.code, 403)
