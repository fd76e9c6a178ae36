"""Tests for mxref.http.request: JSON bodies and query parameters, with the Matrix errors a client sees."""

from io import BytesIO

from hypothesis import given, strategies as st
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest

from mxref.errors import MatrixError
from mxref.http.request import (
    parse_boolean, parse_integer, parse_json_object, parse_json_object_from_query,
    parse_string, parse_strings, require_fields,
)
from mxref.http.resource import JsonResource
from mxref.http.site import MatrixSite
from tests.http.memory_http import request as http_request


def body_request(data: bytes):
    request = DummyRequest([b""])
    request.method = b"POST"
    request.content = BytesIO(data)
    return request


def query_request(**args):
    request = DummyRequest([b""])
    request.args = {name.encode(): [v if isinstance(v, bytes) else v.encode() for v in values]
                    for name, values in args.items()}
    return request


class JsonBodyTests(unittest.TestCase):
    def assert_errcode(self, data, errcode, **kwargs):
        error = self.assertRaises(MatrixError, parse_json_object, body_request(data), **kwargs)
        self.assertEqual((error.code, error.errcode), (400, errcode))

    def test_object_is_parsed(self):
        """A JSON object body comes back as a dict, non-ASCII text intact."""
        self.assertEqual(parse_json_object(body_request('{"a": [1, "é"]}'.encode())), {"a": [1, "é"]})

    def test_invalid_json_is_not_json(self):
        """Malformed JSON gives 400 M_NOT_JSON."""
        self.assert_errcode(b'{"a": ', "M_NOT_JSON")
        self.assert_errcode(b"{'a': 1}", "M_NOT_JSON")

    def test_bad_utf8_is_not_json(self):
        """A body that is not UTF-8 gives 400 M_NOT_JSON."""
        self.assert_errcode(b'{"a": "\xff"}', "M_NOT_JSON")

    def test_utf16_is_not_json(self):
        """JSON in UTF-16 is refused (the spec requires UTF-8) even though Python could guess it."""
        self.assert_errcode('{"a": 1}'.encode("utf-16"), "M_NOT_JSON")

    def test_nan_and_infinity_are_not_json(self):
        """NaN, Infinity, -Infinity and numbers overflowing to infinity give 400 M_NOT_JSON."""
        for text in (b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": 1e400}', b'{"a": -1.5e999}'):
            self.assert_errcode(text, "M_NOT_JSON")

    def test_unpaired_surrogate_is_not_json(self):
        """A string escape for a lone UTF-16 surrogate is refused; a proper pair is fine."""
        self.assert_errcode(b'{"a": "\\ud800"}', "M_NOT_JSON")
        self.assertEqual(parse_json_object(body_request(b'{"a": "\\ud83d\\ude00"}')), {"a": "\U0001F600"})

    def test_deep_nesting_is_an_error_not_a_crash(self):
        """Absurdly nested JSON gives 400 M_NOT_JSON instead of a RecursionError."""
        self.assert_errcode(b"[" * 200000 + b"]" * 200000, "M_NOT_JSON")

    def test_valid_json_that_is_not_an_object_is_bad_json(self):
        """A JSON array, string or number body gives 400 M_BAD_JSON."""
        for text in (b"[]", b'"a"', b"3", b"null"):
            self.assert_errcode(text, "M_BAD_JSON")

    def test_empty_body(self):
        """An empty body is M_NOT_JSON unless the endpoint allows it, then it reads as {}."""
        self.assert_errcode(b"", "M_NOT_JSON")
        self.assertEqual(parse_json_object(body_request(b""), allow_empty_body=True), {})

    @given(st.dictionaries(st.text(), st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children), max_leaves=10)))
    def test_round_trip(self, value):
        """Any JSON object a client sends as UTF-8 is read back unchanged."""
        import json
        data = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return
        self.assertEqual(parse_json_object(body_request(data)), value)

    def test_malformed_json_over_http(self):
        """Through a real Site, a malformed body is answered with 400 M_NOT_JSON."""
        resource = JsonResource()
        resource.register("POST", "/x", lambda request: (200, parse_json_object(request)))
        site = MatrixSite(resource, MemoryReactorClock())
        response = http_request(site, "POST", "/x", b"{not json")
        self.assertEqual(response.code, 400)
        self.assertEqual(response.json()["errcode"], "M_NOT_JSON")
        self.assertEqual(http_request(site, "POST", "/x", {"k": "v"}).json(), {"k": "v"})

    def test_form_encoded_body_does_not_become_query_args(self):
        """A POST body sent as a form never shows up as query parameters."""
        resource = JsonResource()
        resource.register("POST", "/x", lambda request: (200, {"user": parse_string(request, "user_id")}))
        site = MatrixSite(resource, MemoryReactorClock())
        response = http_request(site, "POST", "/x", b"user_id=%40admin%3Ax",
                                {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(response.json(), {"user": None})


class RequireFieldsTests(unittest.TestCase):
    def test_present_fields_pass(self):
        """Fields of the right types pass and the body is returned."""
        body = {"name": "a", "n": 1, "f": 1.5, "ok": False}
        self.assertIs(require_fields(body, {"name": str, "n": int, "f": (int, float), "ok": bool}), body)

    def test_missing_field_is_missing_param(self):
        """A missing field gives 400 M_MISSING_PARAM naming it."""
        error = self.assertRaises(MatrixError, require_fields, {}, {"password": str})
        self.assertEqual((error.code, error.errcode), (400, "M_MISSING_PARAM"))
        self.assertIn("password", error.msg)

    def test_wrong_type_is_bad_json(self):
        """A field of the wrong type (null included) gives 400 M_BAD_JSON."""
        for value in (1, None, ["a"]):
            error = self.assertRaises(MatrixError, require_fields, {"name": value}, {"name": str})
            self.assertEqual((error.code, error.errcode), (400, "M_BAD_JSON"))

    def test_boolean_is_not_an_integer(self):
        """true is not accepted where an integer is required."""
        error = self.assertRaises(MatrixError, require_fields, {"n": True}, {"n": int})
        self.assertEqual(error.errcode, "M_BAD_JSON")


class QueryParameterTests(unittest.TestCase):
    def assert_invalid(self, function, request, name, errcode="M_INVALID_PARAM", **kwargs):
        error = self.assertRaises(MatrixError, function, request, name, **kwargs)
        self.assertEqual((error.code, error.errcode), (400, errcode))

    def test_string(self):
        """A string parameter is read; absent gives the default; required and absent is M_MISSING_PARAM."""
        request = query_request(dir=["b"], name=["é"])
        self.assertEqual(parse_string(request, "dir", allowed={"f", "b"}), "b")
        self.assertEqual(parse_string(request, "name"), "é")
        self.assertEqual(parse_string(request, "from", default="x"), "x")
        self.assert_invalid(parse_string, request, "from", "M_MISSING_PARAM", required=True)

    def test_string_not_allowed(self):
        """A value outside the allowed set gives M_INVALID_PARAM."""
        self.assert_invalid(parse_string, query_request(dir=["up"]), "dir", allowed={"f", "b"})

    def test_string_not_utf8(self):
        """A parameter that is not UTF-8 gives M_INVALID_PARAM."""
        self.assert_invalid(parse_string, query_request(name=[b"\xff"]), "name")

    def test_repeated_strings(self):
        """A repeated parameter such as ver= gives every value in order."""
        request = query_request(ver=["10", "11"])
        self.assertEqual(parse_strings(request, "ver"), ["10", "11"])
        self.assertEqual(parse_strings(request, "other"), [])
        self.assertEqual(parse_strings(request, "other", default=["1"]), ["1"])

    def test_integer(self):
        """Integers are decimal digits with an optional minus, within optional bounds."""
        self.assertEqual(parse_integer(query_request(limit=["10"]), "limit"), 10)
        self.assertEqual(parse_integer(query_request(limit=["-3"]), "limit"), -3)
        self.assertEqual(parse_integer(query_request(), "limit", default=5), 5)
        for text in ("1.5", "ten", "", " 1", "+1", "1_000", "0x10"):
            self.assert_invalid(parse_integer, query_request(limit=[text]), "limit")
        self.assert_invalid(parse_integer, query_request(limit=["-1"]), "limit", minimum=0)
        self.assert_invalid(parse_integer, query_request(limit=["101"]), "limit", maximum=100)
        self.assert_invalid(parse_integer, query_request(), "limit", "M_MISSING_PARAM", required=True)

    def test_boolean(self):
        """Booleans are exactly 'true' or 'false'."""
        self.assertIs(parse_boolean(query_request(full_state=["true"]), "full_state"), True)
        self.assertIs(parse_boolean(query_request(full_state=["false"]), "full_state"), False)
        self.assertIs(parse_boolean(query_request(), "full_state", default=False), False)
        for text in ("1", "True", "yes"):
            self.assert_invalid(parse_boolean, query_request(full_state=[text]), "full_state")

    def test_json_query_parameter(self):
        """filter= may carry a JSON object; invalid JSON is M_NOT_JSON and a non-object M_BAD_JSON."""
        request = query_request(filter=['{"room": {"timeline": {"limit": 5}}}'])
        self.assertEqual(parse_json_object_from_query(request, "filter"), {"room": {"timeline": {"limit": 5}}})
        self.assertIsNone(parse_json_object_from_query(query_request(), "filter"))
        self.assert_invalid(parse_json_object_from_query, query_request(filter=["{"]), "filter", "M_NOT_JSON")
        self.assert_invalid(parse_json_object_from_query, query_request(filter=["[1]"]), "filter", "M_BAD_JSON")
