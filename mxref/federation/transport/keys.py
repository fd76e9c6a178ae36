"""Publishing our signing keys: ``GET /_matrix/key/v2/server``, and the federation version.

Spec: Server-Server API, "Retrieving server keys" > "Publishing Keys"
(https://spec.matrix.org/v1.19/server-server-api/#publishing-keys): the response holds
``server_name``, ``verify_keys`` (key ID -> ``{"key": unpadded base64}``), ``old_verify_keys``
(key ID -> ``{"key", "expired_ts"}``) and ``valid_until_ts``, and is signed by every current
key; and "Server implementation" (``GET /_matrix/federation/v1/version``).

Serving as a notary ("Querying Keys Through Another Server",
https://spec.matrix.org/v1.19/server-server-api/#querying-keys-through-another-server):
``GET /_matrix/key/v2/query/{serverName}`` and ``POST /_matrix/key/v2/query`` answer
``{"server_keys": [...]}`` with each queried server's own signed key response,
from our cache or fetched from that server, with our signature added ("The
receiving (notary) server must sign the keys returned by the queried server").
``minimum_valid_until_ts`` defaults to now; an empty key-ID map asks for all keys;
no servers gives an empty list; a server we cannot reach and have nothing
cached for is left out.
"""

from twisted.internet import defer

import mxref
from mxref.errors import MatrixError
from mxref.events.signing import encode_verify_key_base64, get_verify_key, key_id_of, sign_json
from mxref.http.request import parse_integer, parse_json_object
from mxref.types import is_valid_server_name


def server_keys_response(server_name, signing_key, old_keys, now_ms, validity_ms):
    """Our signed key response.

    :param old_keys: ``{key_id: OldVerifyKey}`` (see :func:`mxref.crypto.keys.old_verify_keys`).
    :param validity_ms: how long others may cache the response (``valid_until_ts - now``).
    :returns: the signed JSON object (not a Deferred).
    """
    response = {
        "server_name": server_name,
        "valid_until_ts": now_ms + validity_ms,
        "verify_keys": {key_id_of(signing_key): {"key": encode_verify_key_base64(get_verify_key(signing_key))}},
        "old_verify_keys": {
            key_id: {"key": encode_verify_key_base64(old.verify_key), "expired_ts": old.expired_ts}
            for key_id, old in old_keys.items()
        },
    }
    return sign_json(response, server_name, signing_key)


class ServerKeysResource:
    """``GET /_matrix/key/v2/server`` (and the deprecated ``/server/{keyId}`` form) and
    ``GET /_matrix/federation/v1/version``; both are unauthenticated.

    :param server_name: our server name.
    :param signing_key: our signing key.
    :param old_keys: ``{key_id: OldVerifyKey}``.
    :param clock: an ``IReactorTime``.
    :param validity_ms: how long our keys may be cached.
    """

    def __init__(self, server_name, signing_key, old_keys, clock, validity_ms):
        self._server_name = server_name
        self._signing_key = signing_key
        self._old_keys = old_keys
        self._clock = clock
        self._validity_ms = validity_ms

    def register_routes(self, resource) -> None:
        """Add the endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register("GET", ["/_matrix/key/v2/server", "/_matrix/key/v2/server/{keyId}"], self.get_keys)
        resource.register("GET", "/_matrix/federation/v1/version", self.get_version)

    def get_keys(self, request, key_id=None):
        """Our current keys, signed."""
        now_ms = int(self._clock.seconds() * 1000)
        return 200, server_keys_response(self._server_name, self._signing_key, self._old_keys, now_ms, self._validity_ms)

    def get_version(self, request):
        """The server implementation's name and version."""
        return 200, {"server": {"name": "mxref", "version": mxref.__version__}}


class KeyQueryResource:
    """The notary endpoints ``GET /_matrix/key/v2/query/{serverName}`` and ``POST /_matrix/key/v2/query``.

    Both are unauthenticated.

    :param keyring: a :class:`mxref.crypto.keyring.Keyring` (its ``get_key_responses``).
    :param server_name: our server name.
    :param signing_key: our signing key (the notary signature).
    :param old_keys: our ``{key_id: OldVerifyKey}`` (for queries about ourselves).
    :param clock: an ``IReactorTime``.
    :param validity_ms: how long our own keys may be cached.
    """

    def __init__(self, keyring, server_name, signing_key, old_keys, clock, validity_ms):
        self._keyring = keyring
        self._server_name = server_name
        self._signing_key = signing_key
        self._old_keys = old_keys
        self._clock = clock
        self._validity_ms = validity_ms

    def register_routes(self, resource) -> None:
        """Add the endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register(
            "GET", ["/_matrix/key/v2/query/{serverName}", "/_matrix/key/v2/query/{serverName}/{keyId}"],
            self.get_query,
        )
        resource.register("POST", "/_matrix/key/v2/query", self.post_query)

    def get_query(self, request, server_name, key_id=None):
        """One server's keys; ``minimum_valid_until_ts`` from the query string."""
        minimum = parse_integer(request, "minimum_valid_until_ts", minimum=0)
        wanted = {"minimum_valid_until_ts": minimum} if minimum is not None else {}
        criteria = {key_id: wanted} if key_id else ({None: wanted} if wanted else {})
        d = self.query({server_name: criteria})
        d.addCallback(lambda responses: (200, {"server_keys": responses}))
        return d

    def post_query(self, request):
        """Several servers' keys: ``{"server_keys": {server: {key_id: {"minimum_valid_until_ts": ms}}}}``."""
        body = parse_json_object(request)
        server_keys = body.get("server_keys")
        if not isinstance(server_keys, dict):
            raise MatrixError(400, "M_BAD_JSON", "server_keys must be an object")
        for server_name, keys in server_keys.items():
            if not isinstance(keys, dict):
                raise MatrixError(400, "M_BAD_JSON", f"server_keys.{server_name} must be an object")
            for key_id, criteria in keys.items():
                if not isinstance(criteria, dict):
                    raise MatrixError(400, "M_BAD_JSON", f"criteria for {server_name} {key_id} must be an object")
                minimum = criteria.get("minimum_valid_until_ts")
                if minimum is not None and (not isinstance(minimum, int) or isinstance(minimum, bool)):
                    raise MatrixError(400, "M_BAD_JSON", "minimum_valid_until_ts must be an integer")
        d = self.query(server_keys)
        d.addCallback(lambda responses: (200, {"server_keys": responses}))
        return d

    @defer.inlineCallbacks
    def query(self, server_keys: dict):
        """Answer a key query.

        :param server_keys: ``{server_name: {key_id: {"minimum_valid_until_ts": ms}}}``; a key ID
            of ``None`` carries a minimum for "all keys".
        :returns: a Deferred firing with the list of key responses, each signed by us as well
            as by its server.
        """
        responses = []
        for server_name, keys in server_keys.items():
            if not is_valid_server_name(server_name):
                continue
            minimums = [
                criteria.get("minimum_valid_until_ts") for criteria in keys.values()
                if isinstance(criteria.get("minimum_valid_until_ts"), int)
            ]
            minimum = max(minimums) if minimums else None
            key_ids = [key_id for key_id in keys if key_id is not None]
            if server_name == self._server_name:
                now_ms = int(self._clock.seconds() * 1000)
                responses.append(
                    server_keys_response(server_name, self._signing_key, self._old_keys, now_ms, self._validity_ms)
                )
                continue
            found = yield self._keyring.get_key_responses(server_name, key_ids, minimum)
            responses.extend(sign_json(response, self._server_name, self._signing_key) for response in found)
        return responses
