"""Authenticating inbound federation requests: the ``X-Matrix`` header checked against the origin's key.

Spec: Server-Server API, "Authentication" > "Request Authentication"
(https://spec.matrix.org/v1.19/server-server-api/#request-authentication).
The receiver rebuilds the signed object from what it received (method, the
request target as sent, the ``origin`` and ``destination`` of the header and
the parsed JSON body), and checks the signature with the origin's key. If the
header names a ``destination`` that is not our server name the request is
refused with 401; a header without ``destination`` (senders before v1.3) is
accepted, and then our own name is what was signed.

Keys published in ``old_verify_keys`` are "only valid for signing events"
("Publishing Keys"), so a request must be signed with one of the origin's
current keys, valid now.

Endpoint resources use :func:`authenticated` to wrap a route callback so that
it is called with the authenticated ``origin``.
"""

import inspect

from twisted.internet import defer
from twisted.logger import Logger

from mxref.errors import MatrixError, SignatureError
from mxref.federation.transport.xmatrix import parse_authorization_header, request_signing_json
from mxref.http.request import decode_json, read_body


class FederationRequestAuthenticator:
    """Checks the ``X-Matrix`` Authorization header of inbound federation requests.

    :param keyring: a :class:`mxref.crypto.keyring.Keyring` (anything with
        ``verify_json_for_server(server_name, obj, minimum_valid_until_ts)``
        returning a Deferred that fails with :class:`SignatureError`).
    :param server_name: our server name.
    :param clock: an ``IReactorTime`` giving "now" for key validity; by
        default the keyring's own ``clock``.
    :param federation_config: if given, a
        :class:`~mxref.config.federation.FederationConfig` whose
        ``federation_domain_whitelist`` the origin must be in (403 ``M_FORBIDDEN`` otherwise).
    """

    _log = Logger()

    def __init__(self, keyring, server_name: str, clock=None, federation_config=None):
        self._keyring = keyring
        self._server_name = server_name
        self._clock = clock if clock is not None else keyring.clock
        self._federation_config = federation_config

    @defer.inlineCallbacks
    def authenticate(self, request, body_json):
        """Authenticate one request.

        :param request: the ``twisted.web`` request (its method, ``uri`` and
            ``Authorization`` header are read).
        :param body_json: the parsed JSON body, or ``None`` when the request
            has no body.
        :returns: a Deferred firing with the origin server name.
        :raises MatrixError: (through the Deferred) 401 ``M_UNAUTHORIZED`` when
            the header is missing or malformed, names another destination, or
            its signature does not verify with a current key of the origin;
            403 ``M_FORBIDDEN`` when the origin is outside ``federation_domain_whitelist``.
        """
        headers = request.requestHeaders.getRawHeaders(b"Authorization") or []
        x_matrix = [value for value in headers if value[:9].lower() == b"x-matrix "]
        if not x_matrix:
            raise MatrixError(401, "M_UNAUTHORIZED", "Missing X-Matrix Authorization header")
        # Synapse sends one header per signing key; any one that verifies is enough.
        errors = []
        for value in x_matrix:
            credentials = parse_authorization_header(value)
            if credentials.destination is not None and credentials.destination != self._server_name:
                raise MatrixError(
                    401, "M_UNAUTHORIZED",
                    f"Request is for {credentials.destination}, not for this server ({self._server_name})",
                )
            try:
                uri = request.uri.decode("ascii")
            except UnicodeDecodeError:
                raise MatrixError(401, "M_UNAUTHORIZED", "Request target is not ASCII") from None
            signed = request_signing_json(
                request.method.decode("ascii"),
                uri,
                credentials.origin,
                credentials.destination if credentials.destination is not None else self._server_name,
                body_json,
            )
            signed["signatures"] = {credentials.origin: {credentials.key_id: credentials.signature}}
            now_ms = int(self._clock.seconds() * 1000)
            try:
                yield self._keyring.verify_json_for_server(credentials.origin, signed, now_ms)
            except SignatureError as e:
                errors.append(e.msg)
                continue
            if self._federation_config is not None and not self._federation_config.is_domain_allowed(
                credentials.origin
            ):
                raise MatrixError(403, "M_FORBIDDEN", f"Federation with {credentials.origin} is not allowed")
            return credentials.origin
        self._log.info("refused federation request {method} {uri}: {errors}",
                       method=request.method, uri=request.uri, errors=errors)
        raise MatrixError(401, "M_UNAUTHORIZED", "Invalid X-Matrix signature: " + "; ".join(errors))


def read_json_body(request):
    """The request's JSON body for signature checking: ``None`` when empty, else the decoded value.

    :raises MatrixError: 400 ``M_NOT_JSON`` when the body is not JSON.
    """
    data = read_body(request)
    if not data.strip():
        return None
    return decode_json(data)


def authenticated(authenticator, callback):
    """Wrap a :class:`~mxref.http.resource.JsonResource` route callback so it requires X-Matrix auth.

    The returned callback parses the body (when there is one), authenticates
    the request with ``authenticator`` and then calls
    ``callback(request, origin, **path_parameters)``, whose result (a
    ``(status, body)`` tuple, a Deferred or a coroutine of one) it passes on.

    :param authenticator: a :class:`FederationRequestAuthenticator`.
    :param callback: the endpoint logic.
    :returns: a route callback returning a Deferred.
    """

    @defer.inlineCallbacks
    def endpoint(request, **parameters):
        body = read_json_body(request)
        origin = yield authenticator.authenticate(request, body)
        result = callback(request, origin, **parameters)
        if inspect.iscoroutine(result):
            result = defer.ensureDeferred(result)
        result = yield result
        return result

    endpoint.__name__ = getattr(callback, "__name__", "endpoint")
    endpoint.__doc__ = getattr(callback, "__doc__", None)
    return endpoint
