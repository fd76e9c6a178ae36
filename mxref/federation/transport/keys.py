"""Publishing our signing keys: ``GET /_matrix/key/v2/server``, and the federation version.

Spec: Server-Server API, "Retrieving server keys" > "Publishing Keys"
(https://spec.matrix.org/v1.19/server-server-api/#publishing-keys): the response holds
``server_name``, ``verify_keys`` (key ID -> ``{"key": unpadded base64}``), ``old_verify_keys``
(key ID -> ``{"key", "expired_ts"}``) and ``valid_until_ts``, and is signed by every current
key; and "Server implementation" (``GET /_matrix/federation/v1/version``).
"""

import mxref
from mxref.events.signing import encode_verify_key_base64, get_verify_key, key_id_of, sign_json


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
