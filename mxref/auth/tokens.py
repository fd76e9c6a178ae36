"""Access tokens: making them, reading them from requests, and turning them into a Requester.

Spec: Client-Server API, "Client Authentication" / "Using access tokens":
tokens are opaque strings; the server MUST accept them in an
``Authorization: Bearer <token>`` header and (deprecated since v1.11, removed
after v1.19 by MSC4127) in the ``access_token`` query parameter. A missing
token gives ``401 M_MISSING_TOKEN``, an unknown or expired one ``401
M_UNKNOWN_TOKEN`` with ``soft_logout`` ("Soft logout"; ``false`` here: the
client must log in again).
"""

import base64
import string

import attr
from twisted.internet import defer

from mxref.errors import MatrixError

#: Every access token mxref issues starts with this, so secret scanners and
#: admins can recognise one.
ACCESS_TOKEN_PREFIX = "mxr_"

_RANDOM_ALPHABET = string.ascii_letters + string.digits
_RANDOM_LENGTH = 40  # 40 characters of base 62: about 238 bits of randomness


@attr.s(frozen=True, slots=True)
class Requester:
    """The user and device a request was authenticated as.

    :ivar user_id: the full user ID (``@alice:example.org``).
    :ivar device_id: the device the access token belongs to (None for tokens
        without a device, such as some admin tokens).
    :ivar access_token: the token the request carried.
    """

    user_id = attr.ib(type=str)
    device_id = attr.ib(default=None)
    access_token = attr.ib(default=None, repr=False)


def generate_access_token(user_id: str, rng) -> str:
    """Make a new access token for ``user_id``.

    The token is ``mxr_<localpart in unpadded URL-safe base64>_<40 random
    letters and digits>``: URL-safe, and it says whose it is to an admin
    reading a database, while the random part carries the secret.

    :param user_id: the full user ID the token is for.
    :param rng: a ``random.SystemRandom()`` in production (anything with
        ``choice``); tests may pass a seeded ``random.Random``.
    :returns: the token (not a Deferred).
    """
    localpart = user_id[1:].split(":", 1)[0] if user_id.startswith("@") else user_id
    owner = base64.urlsafe_b64encode(localpart.encode("utf-8")).rstrip(b"=").decode("ascii")
    secret = "".join(rng.choice(_RANDOM_ALPHABET) for _ in range(_RANDOM_LENGTH))
    return f"{ACCESS_TOKEN_PREFIX}{owner}_{secret}"


def _missing_token():
    return MatrixError(401, "M_MISSING_TOKEN", "Missing access token")


def get_access_token_from_request(request, allow_query_param: bool = True) -> str:
    """Read the access token a client sent.

    The ``Authorization: Bearer`` header wins; the ``access_token`` query
    parameter is read only when no Bearer header is present and
    ``allow_query_param`` is true. The scheme name is case-insensitive
    (RFC 9110 section 11.1); other schemes (such as ``X-Matrix``) do not count.

    :param request: a ``twisted.web`` request.
    :param allow_query_param: accept the deprecated query-string form.
    :returns: the token string (not a Deferred).
    :raises MatrixError: ``401 M_MISSING_TOKEN`` when there is none.
    """
    for header in request.requestHeaders.getRawHeaders(b"Authorization") or []:
        scheme, _, credentials = header.strip().partition(b" ")
        if scheme.lower() == b"bearer" and credentials.strip():
            try:
                return credentials.strip().decode("ascii")
            except UnicodeDecodeError:
                raise MatrixError(401, "M_UNKNOWN_TOKEN", "Unrecognised access token", soft_logout=False)
    if allow_query_param:
        values = (getattr(request, "args", None) or {}).get(b"access_token") or []
        if values and values[0]:
            try:
                return values[0].decode("ascii")
            except UnicodeDecodeError:
                raise MatrixError(401, "M_UNKNOWN_TOKEN", "Unrecognised access token", soft_logout=False)
    raise _missing_token()


def has_access_token(request, allow_query_param: bool = True) -> bool:
    """Whether the request carries an access token at all (for endpoints where auth is optional)."""
    try:
        get_access_token_from_request(request, allow_query_param)
    except MatrixError as error:
        return error.errcode != "M_MISSING_TOKEN"
    return True


class RequestAuthenticator:
    """Turns the access token on a request into a :class:`Requester`.

    :param lookup: ``lookup(token)`` -> Deferred (or coroutine) of
        ``(user_id, device_id)``, or ``(user_id, device_id, valid_until_ms)``
        for a token that expires, or ``None`` for an unknown token: the
        storage's ``get_user_by_access_token``.
    :param clock: an ``IReactorTime`` (decides whether a token has expired).
    :param allow_query_param: accept the deprecated ``access_token`` query parameter.
    """

    def __init__(self, lookup, clock, allow_query_param: bool = True):
        self._lookup = lookup
        self._clock = clock
        self._allow_query_param = allow_query_param

    def authenticate(self, request):
        """Authenticate a request that must carry a valid token.

        The Requester is also left on ``request.requester`` for the access log.

        :returns: a Deferred firing with the :class:`Requester`, or failing with
            ``401 M_MISSING_TOKEN`` / ``401 M_UNKNOWN_TOKEN``.
        """
        try:
            token = get_access_token_from_request(request, self._allow_query_param)
        except MatrixError:
            return defer.fail()
        return defer.ensureDeferred(self._authenticate_token(request, token))

    def authenticate_optional(self, request):
        """Authenticate a request for which a token is optional (e.g. ``/versions``).

        :returns: a Deferred firing with a :class:`Requester`, or ``None`` when
            the request has no token; a token that is present but unknown
            still fails with ``401 M_UNKNOWN_TOKEN``.
        """
        if not has_access_token(request, self._allow_query_param):
            return defer.succeed(None)
        return self.authenticate(request)

    async def _authenticate_token(self, request, token):
        found = self._lookup(token)
        if not isinstance(found, defer.Deferred):
            found = defer.ensureDeferred(found) if hasattr(found, "__await__") else defer.succeed(found)
        found = await found
        if found is None:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Unrecognised access token", soft_logout=False)
        user_id, device_id = found[0], found[1]
        valid_until_ms = found[2] if len(found) > 2 else None
        if valid_until_ms is not None and self._clock.seconds() * 1000 >= valid_until_ms:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Access token has expired", soft_logout=False)
        requester = Requester(user_id=user_id, device_id=device_id, access_token=token)
        try:
            request.requester = requester
        except AttributeError:
            pass
        return requester
