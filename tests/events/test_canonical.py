"""Tests for canonical JSON encoding and the strict canonical JSON check."""

import json

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial import unittest

from mxref.errors import InvalidEventFormat
from mxref.events.canonical import MAX_SAFE_INTEGER, check_canonical_json, encode_canonical_json

#: (input JSON text, expected canonical JSON) pairs from the spec's appendix
#: "Canonical JSON" > "Examples".
SPEC_EXAMPLES = [
    ("{}", "{}"),
    ('{"one": 1, "two": "Two"}', '{"one":1,"two":"Two"}'),
    ('{\n    "b": "2",\n    "a": "1"\n}', '{"a":"1","b":"2"}'),
    ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
    (
        """{
            "auth": {
                "success": true,
                "mxid": "@john.doe:example.com",
                "profile": {
                    "display_name": "John Doe",
                    "three_pids": [
                        {"medium": "email", "address": "john.doe@example.org"},
                        {"medium": "msisdn", "address": "123456789"}
                    ]
                }
            }
        }""",
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",'
        '"three_pids":[{"address":"john.doe@example.org","medium":"email"},'
        '{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ),
    ('{"a": "日本語"}', '{"a":"日本語"}'),
    ('{"本": 2, "日": 1}', '{"日":1,"本":2}'),
    ('{"a": "\\u65E5"}', '{"a":"日"}'),
    ('{"a": null}', '{"a":null}'),
    ('{"a": -0, "b": 1e10}', '{"a":0,"b":10000000000}'),
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


class EncodeCanonicalJsonTests(unittest.TestCase):
    """encode_canonical_json produces the spec's byte-exact encoding."""

    def test_spec_examples(self):
        """Every example in the spec's appendix encodes to the canonical text shown there."""
        for given_text, expected in SPEC_EXAMPLES:
            with self.subTest(given_text=given_text):
                self.assertEqual(encode_canonical_json(json.loads(given_text)), expected.encode("utf-8"))

    def test_mandatory_escapes_only(self):
        """Quotes, backslashes and control characters are escaped; DEL, U+2028 and emoji are not."""
        value = {"s": '"\\\b\t\n\f\r\x00\x1f\x7f\u2028😀/'}
        self.assertEqual(
            encode_canonical_json(value),
            '{"s":"\\"\\\\\\b\\t\\n\\f\\r\\u0000\\u001f\x7f\u2028😀/"}'.encode("utf-8"),
        )

    def test_keys_sorted_by_code_point(self):
        """Keys sort by code point: upper case before lower case, astral characters last."""
        value = {"b": 1, "B": 2, "😀": 3, "é": 4, "a": 5}
        self.assertEqual(encode_canonical_json(value), '{"B":2,"a":5,"b":1,"é":4,"😀":3}'.encode("utf-8"))

    def test_big_integers_encode(self):
        """Integers beyond 2**53, which old room versions may contain, still encode in full."""
        self.assertEqual(encode_canonical_json({"depth": 2**63 - 1}), b'{"depth":9223372036854775807}')

    def test_non_integral_float_encodes(self):
        """A fractional float (possible in room versions 1-5) is written rather than refused."""
        self.assertEqual(encode_canonical_json({"level": 50.5}), b'{"level":50.5}')

    def test_negative_zero_float(self):
        """-0.0 is written as 0: negative zero must not appear."""
        self.assertEqual(encode_canonical_json([-0.0]), b"[0]")

    def test_unencodable_values(self):
        """NaN, infinity, lone surrogates and non-JSON types are refused with M_BAD_JSON."""
        for value in ({"a": float("nan")}, [float("inf")], {"a": "\ud800"}, {"a": {1, 2}}):
            with self.subTest(value=value):
                error = self.assertRaises(InvalidEventFormat, encode_canonical_json, value)
                self.assertEqual(error.errcode, "M_BAD_JSON")

    def test_input_not_modified(self):
        """Encoding a value holding floats leaves the caller's value unchanged."""
        value = {"a": [1.0, {"b": 2.0}]}
        encode_canonical_json(value)
        self.assertEqual(value, {"a": [1.0, {"b": 2.0}]})
        self.assertIsInstance(value["a"][0], float)

    @given(json_values)
    def test_round_trips(self, value):
        """Decoding the canonical encoding gives back the same value."""
        self.assertEqual(json.loads(encode_canonical_json(value)), value)

    @given(st.dictionaries(st.text(), st.integers(min_value=0, max_value=10), max_size=8))
    def test_key_order_irrelevant(self, value):
        """Two dicts with the same items in a different insertion order encode identically."""
        reversed_value = dict(reversed(list(value.items())))
        self.assertEqual(encode_canonical_json(value), encode_canonical_json(reversed_value))

    @given(json_values)
    def test_no_insignificant_whitespace(self, value):
        """The encoding equals Python's compact sorted dump, so there is no whitespace to spare."""
        expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        self.assertEqual(encode_canonical_json(value), expected.encode("utf-8"))


class CheckCanonicalJsonTests(unittest.TestCase):
    """check_canonical_json enforces the strict rule of room versions 6 onwards."""

    def test_accepts_json_values(self):
        """Nulls, booleans, strings, in-range integers, lists and objects pass."""
        check_canonical_json(
            {"a": [None, True, False, "日本語", MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, {"b": []}]}
        )

    def test_integer_range(self):
        """Integers one past either end of the range are refused."""
        for number in (MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 2**63):
            with self.subTest(number=number):
                self.assertRaises(InvalidEventFormat, check_canonical_json, {"depth": number})

    def test_floats_refused(self):
        """Any float is refused, including integral ones, NaN and infinities."""
        for number in (1.5, 10.0, -0.0, 1e10, float("nan"), float("inf"), float("-inf")):
            with self.subTest(number=number):
                self.assertRaises(InvalidEventFormat, check_canonical_json, {"a": [{"b": number}]})

    def test_bad_strings_and_types_refused(self):
        """Lone surrogates (in values or keys), non-string keys and non-JSON types are refused."""
        for value in ({"a": "\udc00"}, {"\ud800": 1}, {1: "a"}, {"a": b"bytes"}, {"a": object()}):
            with self.subTest(value=value):
                self.assertRaises(InvalidEventFormat, check_canonical_json, value)

    def test_deep_nesting(self):
        """Deeply nested values are checked without hitting the recursion limit."""
        value = 1.5
        for _ in range(5000):
            value = [value]
        self.assertRaises(InvalidEventFormat, check_canonical_json, value)

    @given(json_values)
    def test_generated_json_passes(self, value):
        """Every value built only from canonical JSON types passes the strict check."""
        check_canonical_json(value)
