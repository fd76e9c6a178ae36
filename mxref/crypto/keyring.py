"""The keyring: other servers' signing keys, fetched, verified, cached, and used to check signatures.

Spec: Server-Server API, "Retrieving server keys"
(https://spec.matrix.org/v1.19/server-server-api/#retrieving-server-keys):

* a server publishes ``verify_keys`` (valid for requests and events) and
  ``old_verify_keys`` ("only valid for signing events", each with the
  ``expired_ts`` at which it stopped being used) at ``GET /_matrix/key/v2/server``;
  the response is signed with its ``verify_keys``;
* keys may also be fetched through a notary (``POST /_matrix/key/v2/query``),
  which adds its own signature to the origin's signed response;
* ``valid_until_ts`` "MUST be ignored in room versions 1, 2, 3, and 4", and
  servers "MUST use the lesser of this field and 7 days into the future" when
  deciding whether a key is valid: we store ``min(valid_until_ts, fetched + 7 days)``.

Room versions 5 and later ("Signing key validity period",
https://spec.matrix.org/v1.19/rooms/v5/) accept an event's signature only if
the key was valid at the event's ``origin_server_ts``. A key from
``old_verify_keys`` is accepted only for events whose ``origin_server_ts`` is
before its ``expired_ts``, in every room version, and never for requests.

Where keys come from, in order: our own keys (answered locally), the cache in
:class:`~mxref.storage.interfaces.IFederationStore`, the server itself, then
each trusted notary. Every key response must carry a valid signature of the
server whose keys it holds; a notary's answer must also carry the notary's
signature, checked with the ``verify_keys`` configured for it (or, when none
are configured, the notary's own key fetched from it directly). Concurrent
look-ups of the same key share one fetch.
"""

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from mxref.errors import MatrixError, SignatureError
from mxref.events.canonical import encode_canonical_json
from mxref.events.room_versions import get_room_version
from mxref.events.signing import (
    ED25519,
    decode_verify_key_base64,
    encode_verify_key_base64,
    get_verify_key,
    key_id_of,
    required_signature_servers,
    verify_event_signatures,
    verify_json,
)

#: The longest we trust a key response into the future ("7 days into the future").
MAX_KEY_VALIDITY_MS = 7 * 24 * 60 * 60 * 1000


class KeyLookupError(Exception):
    """A key response was unusable (malformed, wrongly signed, for another server)."""


def check_key_response(response, server_name: str) -> dict:
    """Check a ``/_matrix/key/v2/server``-shaped response for ``server_name`` and its self-signature.

    The response must name ``server_name``, list its keys well-formed, and be
    signed by at least one of its ``verify_keys``; every signature made with a
    key it lists in ``verify_keys`` must verify.

    :returns: ``{key_id: (verify_key, is_old, valid_until_or_expired_ts)}``
        for the keys it holds (not a Deferred).
    :raises KeyLookupError: when any of that fails.
    """
    if not isinstance(response, dict):
        raise KeyLookupError("key response is not an object")
    if response.get("server_name") != server_name:
        raise KeyLookupError(f"key response is for {response.get('server_name')!r}, not {server_name}")
    valid_until_ts = response.get("valid_until_ts")
    if not isinstance(valid_until_ts, int) or isinstance(valid_until_ts, bool):
        raise KeyLookupError(f"key response of {server_name} has no integer valid_until_ts")
    verify_keys = response.get("verify_keys")
    old_verify_keys = response.get("old_verify_keys", {})
    if not isinstance(verify_keys, dict) or not isinstance(old_verify_keys, dict):
        raise KeyLookupError(f"key response of {server_name} has malformed verify_keys")
    keys = {}
    for key_id, entry in old_verify_keys.items():
        expired_ts = entry.get("expired_ts") if isinstance(entry, dict) else None
        if not isinstance(expired_ts, int) or isinstance(expired_ts, bool):
            raise KeyLookupError(f"old key {key_id} of {server_name} has no integer expired_ts")
        if key_id.startswith(ED25519 + ":"):
            keys[key_id] = (_decode(server_name, key_id, entry), True, expired_ts)
    for key_id, entry in verify_keys.items():
        if key_id.startswith(ED25519 + ":"):
            keys[key_id] = (_decode(server_name, key_id, entry), False, valid_until_ts)
    signatures = response.get("signatures")
    own = signatures.get(server_name) if isinstance(signatures, dict) else None
    if not isinstance(own, dict):
        raise KeyLookupError(f"key response of {server_name} is not signed by {server_name}")
    verified = 0
    for key_id in own:
        found = keys.get(key_id)
        if found is None or found[1]:
            continue
        try:
            verify_json(response, server_name, found[0], key_id)
        except SignatureError as e:
            raise KeyLookupError(f"key response of {server_name}: {e.msg}") from None
        verified += 1
    if not verified:
        raise KeyLookupError(f"key response of {server_name} is not signed by any of its verify_keys")
    return keys


def _decode(server_name, key_id, entry):
    key = entry.get("key") if isinstance(entry, dict) else None
    if not isinstance(key, str):
        raise KeyLookupError(f"key {key_id} of {server_name} has no 'key'")
    try:
        return decode_verify_key_base64(key_id, key)
    except ValueError as e:
        raise KeyLookupError(f"key {key_id} of {server_name}: {e}") from None


class _FoundKey:
    """A verify key and what it is good for."""

    __slots__ = ("verify_key", "valid_until_ts", "is_old")

    def __init__(self, verify_key, valid_until_ts, is_old):
        self.verify_key = verify_key
        self.valid_until_ts = valid_until_ts
        self.is_old = is_old


class Keyring:
    """Remote servers' verify keys, and checks of JSON and event signatures with them.

    :param federation_store: an :class:`~mxref.storage.interfaces.IFederationStore` (the key cache).
    :param key_fetcher: something with ``get_server_keys(destination)`` and
        ``query_server_keys(notary, {server: {key_id: {"minimum_valid_until_ts": ms}}})``
        returning Deferreds (a :class:`~mxref.federation.transport.client.FederationClient`).
    :param clock: an ``IReactorTime``; also available as :attr:`clock`.
    :param server_name: our server name.
    :param signing_key: our signing key (our own keys are never fetched).
    :param trusted_key_servers: notaries, as
        :class:`~mxref.config.keys.TrustedKeyServerConfig` objects or plain server names.
    :param old_keys: our own old keys, ``{key_id: OldVerifyKey}``.
    """

    _log = Logger()

    def __init__(self, federation_store, key_fetcher, clock, server_name, signing_key,
                 trusted_key_servers=(), old_keys=None):
        self._store = federation_store
        self._fetcher = key_fetcher
        self.clock = clock
        self._server_name = server_name
        self._signing_key = signing_key
        self._notaries = [self._notary_entry(notary) for notary in trusted_key_servers]
        self._old_keys = dict(old_keys or {})
        self._in_flight = {}

    @staticmethod
    def _notary_entry(notary):
        if isinstance(notary, str):
            return notary, {}
        keys = {}
        for key_id, key_base64 in notary.verify_keys:
            keys[key_id] = decode_verify_key_base64(key_id, key_base64)
        return notary.server_name, keys

    def _now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    # --- looking keys up ------------------------------------------------------

    @defer.inlineCallbacks
    def get_server_verify_key(self, server_name: str, key_id: str, minimum_valid_until_ts: int = 0):
        """Find one verify key of a server.

        Keys listed in ``verify_keys`` and in ``old_verify_keys`` are both
        returned; for an old key ``valid_until_ts`` is its ``expired_ts``.

        :param minimum_valid_until_ts: the key must be valid at least until
            then (ms); a cached key that is not is fetched again.
        :returns: a Deferred firing with ``(verify_key, valid_until_ts)``, or
            ``None`` when no key with that ID, valid long enough, can be found.
        """
        found = yield self._find_key(server_name, key_id, minimum_valid_until_ts)
        if found is None:
            return None
        return found.verify_key, found.valid_until_ts

    @defer.inlineCallbacks
    def _find_key(self, server_name, key_id, minimum_valid_until_ts, fetch=True, use_notaries=True):
        """The key as a :class:`_FoundKey`, from us, the cache or a fetch; or ``None``."""
        if server_name == self._server_name:
            return self._own_key(key_id)
        found = yield self._cached_key(server_name, key_id)
        if found is not None and found.valid_until_ts >= minimum_valid_until_ts:
            return found
        if not fetch:
            return None
        yield self._fetch_coalesced(server_name, key_id, minimum_valid_until_ts, use_notaries)
        found = yield self._cached_key(server_name, key_id)
        if found is not None and found.valid_until_ts >= minimum_valid_until_ts:
            return found
        return None

    def _own_key(self, key_id):
        if key_id == key_id_of(self._signing_key):
            return _FoundKey(get_verify_key(self._signing_key), self._now_ms() + MAX_KEY_VALIDITY_MS, False)
        old = self._old_keys.get(key_id)
        if old is not None:
            return _FoundKey(old.verify_key, old.expired_ts, True)
        return None

    @defer.inlineCallbacks
    def _cached_key(self, server_name, key_id):
        cached = yield self._store.get_server_keys(server_name, [key_id])
        entry = cached.get(key_id)
        if entry is None:
            return None
        key_json = entry.key_json if isinstance(entry.key_json, dict) else {}
        current = key_id in (key_json.get("verify_keys") or {})
        return _FoundKey(decode_verify_key_base64(key_id, entry.verify_key_b64), entry.valid_until_ts, not current)

    def _fetch_coalesced(self, server_name, key_id, minimum_valid_until_ts, use_notaries):
        """Fetch ``server_name``'s keys, sharing one fetch between concurrent callers; never fails.

        :param key_id: the key wanted (notaries are asked for it if the server does not give
            it), or ``None`` for whatever the server itself publishes.
        """
        key = (server_name, key_id, use_notaries)
        waiter = defer.Deferred()
        waiters = self._in_flight.get(key)
        if waiters is not None:
            waiters.append(waiter)
            return waiter
        self._in_flight[key] = [waiter]
        d = defer.ensureDeferred(self._fetch(server_name, key_id, minimum_valid_until_ts, use_notaries))

        def done(result):
            for each in self._in_flight.pop(key):
                each.callback(None)
            if isinstance(result, Failure):
                self._log.failure("fetching keys of {server} failed", result, server=server_name)

        d.addBoth(done)
        return waiter

    async def _fetch(self, server_name, key_id, minimum_valid_until_ts, use_notaries):
        """Fetch from the server itself and, if that did not give the key, from each notary."""
        try:
            response = await self._fetcher.get_server_keys(server_name)
            keys = await self._store_response(server_name, response, server_name)
            found = keys.get(key_id)
            if key_id is None or (found is not None and self._stored_validity(found) >= minimum_valid_until_ts):
                return
        except (MatrixError, KeyLookupError) as e:
            self._log.info("could not fetch keys of {server} directly: {error}", server=server_name, error=e)
        if not use_notaries or key_id is None:
            return
        for notary, notary_keys in self._notaries:
            if notary == server_name:
                continue
            try:
                if await self._fetch_from_notary(notary, notary_keys, server_name, key_id, minimum_valid_until_ts):
                    return
            except (MatrixError, KeyLookupError) as e:
                self._log.info("could not fetch keys of {server} through {notary}: {error}",
                               server=server_name, notary=notary, error=e)

    async def _fetch_from_notary(self, notary, notary_keys, server_name, key_id, minimum_valid_until_ts):
        """Ask one notary; store what it vouches for. Returns whether the key was found valid long enough."""
        answer = await self._fetcher.query_server_keys(
            notary, {server_name: {key_id: {"minimum_valid_until_ts": minimum_valid_until_ts}}}
        )
        responses = answer.get("server_keys") if isinstance(answer, dict) else None
        if not isinstance(responses, list):
            raise KeyLookupError(f"notary {notary} answered without a server_keys list")
        found_valid = False
        for response in responses:
            if not isinstance(response, dict) or response.get("server_name") != server_name:
                continue
            try:
                await self._check_notary_signature(notary, notary_keys, response)
                keys = await self._store_response(server_name, response, notary)
            except KeyLookupError as e:
                self._log.info("notary {notary} answer for {server} refused: {error}",
                               notary=notary, server=server_name, error=e)
                continue
            found = keys.get(key_id)
            if found is not None and self._stored_validity(found) >= minimum_valid_until_ts:
                found_valid = True
        return found_valid

    async def _check_notary_signature(self, notary, notary_keys, response):
        signatures = response.get("signatures")
        by_notary = signatures.get(notary) if isinstance(signatures, dict) else None
        if not isinstance(by_notary, dict) or not by_notary:
            raise KeyLookupError(f"answer is not signed by the notary {notary}")
        for signing_key_id in sorted(by_notary):
            if notary_keys:
                verify_key = notary_keys.get(signing_key_id)
            else:
                found = await self._find_key(notary, signing_key_id, self._now_ms(), use_notaries=False)
                verify_key = None if found is None or found.is_old else found.verify_key
            if verify_key is None:
                continue
            try:
                verify_json(response, notary, verify_key, signing_key_id)
            except SignatureError as e:
                raise KeyLookupError(e.msg) from None
            return
        raise KeyLookupError(f"answer is not signed by a known key of the notary {notary}")

    def _stored_validity(self, key_entry):
        _verify_key, is_old, ts = key_entry
        return ts if is_old else min(ts, self._now_ms() + MAX_KEY_VALIDITY_MS)

    async def _store_response(self, server_name, response, from_server):
        """Check a key response's self-signature and cache its keys. Returns what :func:`check_key_response` does."""
        keys = check_key_response(response, server_name)
        stored = {name: value for name, value in response.items() if name != "signatures"}
        signatures = response.get("signatures") or {}
        stored["signatures"] = {name: value for name, value in signatures.items() if name in (server_name, from_server)}
        for key_id, entry in keys.items():
            verify_key, _is_old, _ts = entry
            await self._store.store_server_keys(
                server_name, key_id, encode_verify_key_base64(verify_key), self._stored_validity(entry),
                from_server, stored,
            )
        return keys

    # --- checking signatures -------------------------------------------------

    @defer.inlineCallbacks
    def verify_json_for_server(self, server_name: str, obj: dict, minimum_valid_until_ts: int = 0):
        """Check that ``obj`` is signed by ``server_name`` with a current key.

        Every ``ed25519`` signature of the server whose key can be found
        (current, valid until at least ``minimum_valid_until_ts``) must verify,
        and at least one must. Keys in ``old_verify_keys`` do not count: they
        are only valid for events.

        :returns: a Deferred firing with ``None``.
        :raises SignatureError: (through the Deferred) otherwise.
        """
        signatures = obj.get("signatures") if isinstance(obj, dict) else None
        entry = signatures.get(server_name) if isinstance(signatures, dict) else None
        if not isinstance(entry, dict):
            raise SignatureError(f"no signature from {server_name}")
        key_ids = sorted(key_id for key_id in entry if key_id.startswith(ED25519 + ":"))
        verified = 0
        for key_id in key_ids:
            found = yield self._find_key(server_name, key_id, minimum_valid_until_ts)
            if found is None or found.is_old:
                continue
            verify_json(obj, server_name, found.verify_key, key_id)
            verified += 1
        if not verified:
            raise SignatureError(
                f"no current key of {server_name} to check its signature (key IDs: {', '.join(key_ids) or 'none'})"
            )

    @defer.inlineCallbacks
    def verify_event(self, event: dict, room_version):
        """Check the signatures a received event needs ("Validating hashes and signatures on received events").

        Fetches every key the required signers' signatures name (valid at the
        event's ``origin_server_ts`` in room versions that enforce key
        validity), then runs :func:`mxref.events.signing.verify_event_signatures`.

        :param room_version: a ``RoomVersion`` or its identifier.
        :returns: a Deferred firing with ``None``.
        :raises SignatureError: (through the Deferred) when a signature is
            missing, unverifiable or wrong.
        """
        version = get_room_version(room_version)
        origin_server_ts = event.get("origin_server_ts")
        if not isinstance(origin_server_ts, int) or isinstance(origin_server_ts, bool):
            origin_server_ts = None
        minimum = origin_server_ts if (version.enforce_key_validity and origin_server_ts is not None) else 0
        signatures = event.get("signatures")
        signatures = signatures if isinstance(signatures, dict) else {}
        wanted = []
        for server_name in sorted(required_signature_servers(event, version)):
            entry = signatures.get(server_name)
            if isinstance(entry, dict):
                wanted.extend((server_name, key_id) for key_id in sorted(entry) if key_id.startswith(ED25519 + ":"))
        found = yield defer.gatherResults(
            [self._find_key(server_name, key_id, minimum) for server_name, key_id in wanted], consumeErrors=True
        ).addErrback(lambda failure: failure.value.subFailure)
        keys = {}
        for (server_name, key_id), key in zip(wanted, found):
            if key is None:
                continue
            if key.is_old and (origin_server_ts is None or origin_server_ts >= key.valid_until_ts):
                continue
            keys[(server_name, key_id)] = (key.verify_key, key.valid_until_ts)
        verify_event_signatures(event, version, lambda server_name, key_id: keys.get((server_name, key_id)))

    # --- serving as a notary --------------------------------------------------

    @defer.inlineCallbacks
    def get_key_responses(self, server_name: str, key_ids=None, minimum_valid_until_ts: int = None):
        """Signed key responses of a remote server, for the notary endpoints.

        Answers from the cache when it holds every wanted key valid until
        ``minimum_valid_until_ts`` (default: now); otherwise fetches from the
        server itself first (never through other notaries). Cached responses
        are returned even when a fresh fetch fails, as the spec allows notaries to.

        :param key_ids: the key IDs wanted, or ``None``/empty for all.
        :returns: a Deferred firing with a list of key responses, each still
            carrying the origin's own signature (duplicates removed).
        """
        if minimum_valid_until_ts is None:
            minimum_valid_until_ts = self._now_ms()
        key_ids = list(key_ids) if key_ids else None
        cached = yield self._store.get_server_keys(server_name, key_ids)
        fresh = bool(cached) and (key_ids is None or all(key_id in cached for key_id in key_ids)) and all(
            entry.valid_until_ts >= minimum_valid_until_ts for entry in cached.values()
            if key_id_is_current(entry)
        )
        if not fresh:
            yield self._fetch_coalesced(server_name, None, minimum_valid_until_ts, False)
            cached = yield self._store.get_server_keys(server_name, key_ids)
        responses = {}
        for entry in cached.values():
            if isinstance(entry.key_json, dict):
                response = dict(entry.key_json)
                response["signatures"] = {server_name: (entry.key_json.get("signatures") or {}).get(server_name, {})}
                responses[encode_canonical_json(response)] = response
        return list(responses.values())


def key_id_is_current(entry) -> bool:
    """Whether a cached :class:`~mxref.storage.records.ServerKey` was listed in ``verify_keys`` (not old)."""
    key_json = entry.key_json if isinstance(entry.key_json, dict) else {}
    return entry.key_id in (key_json.get("verify_keys") or {})
