"""``GET /_matrix/client/versions``, ``GET /.well-known/matrix/client`` and ``GET /capabilities``.

These answers are fixed by configuration, so there is no service behind them.

Which versions ``/versions`` lists. The spec says a server lists the spec
versions it supports, and clients switch features on from that list. mxref
lists the legacy ``r0.5.0``-``r0.6.1`` and ``v1.1`` to ``v1.12``, the range it
serves today; later releases bring endpoints and behaviour that mxref does not
serve yet (v1.13's room reporting, v1.15's OAuth 2.0 server metadata, v1.16's
``use_state_after`` sync and custom profile fields, and the v1.17-v1.19
additions), and listing them would make clients call those. Room version 12
is offered anyway: room versions are negotiated through ``m.room_versions``,
not ``/versions``. The composition root passes a longer list as features land.

``/.well-known/matrix/client`` answers ``{"m.homeserver": {"base_url":
public_baseurl}}`` when a ``public_baseurl`` is known and ``404 M_NOT_FOUND``
otherwise (the spec's "no discovery information available"; a client then
``IGNORE``s auto-discovery). It is only useful when this server is reached on
the server name's host; otherwise the web server there should serve it.

Spec (v1.19), Client-Server API: "API Versions" (``GET /versions``; the
server may vary ``unstable_features`` by user, which mxref does not, so the
token is not read), "Well-known URIs", "Capabilities negotiation" and the
``m.change_password``, ``m.room_versions``, ``m.set_displayname``,
``m.set_avatar_url``, ``m.3pid_changes`` and ``m.get_login_token`` capabilities.
"""

from mxref.errors import MatrixError
from mxref.events.room_versions import DEFAULT_ROOM_VERSION, ROOM_VERSIONS
from mxref.http.resource import client_paths

#: The spec versions mxref serves (see the module docstring for the choice).
SUPPORTED_VERSIONS = ("r0.5.0", "r0.6.0", "r0.6.1") + tuple(f"v1.{minor}" for minor in range(1, 13))


def room_versions_capability(default_room_version: str = DEFAULT_ROOM_VERSION, room_versions=None) -> dict:
    """The ``m.room_versions`` capability: the default and every known version marked ``stable``.

    :param default_room_version: the version ``createRoom`` uses by default.
    :param room_versions: the known identifiers (:data:`~mxref.events.room_versions.ROOM_VERSIONS` by default).
    """
    identifiers = ROOM_VERSIONS if room_versions is None else room_versions
    return {"default": default_room_version, "available": {identifier: "stable" for identifier in identifiers}}


class MetaResource:
    """Serves ``/versions``, ``/.well-known/matrix/client`` and ``/capabilities``.

    :param authenticator: a :class:`~mxref.auth.tokens.RequestAuthenticator`
        (``/capabilities`` needs an access token).
    :param public_baseurl: the Client-Server API base URL for
        ``/.well-known/matrix/client``, or ``None`` to answer 404 there.
    :param default_room_version: the ``m.room_versions`` default.
    :param versions: the spec versions to list (:data:`SUPPORTED_VERSIONS`).
    :param unstable_features: ``{feature: bool}`` for ``unstable_features``.
    :param change_password: whether ``m.change_password`` is enabled
        (``POST /account/password`` is served).
    :param set_displayname: whether users may change their display name.
    :param set_avatar_url: whether users may change their avatar.
    """

    def __init__(self, authenticator, public_baseurl=None, default_room_version: str = DEFAULT_ROOM_VERSION,
                 versions=SUPPORTED_VERSIONS, unstable_features=None, change_password: bool = True,
                 set_displayname: bool = True, set_avatar_url: bool = True):
        self._authenticator = authenticator
        self._public_baseurl = public_baseurl
        self._versions = {"versions": list(versions), "unstable_features": dict(unstable_features or {})}
        self._capabilities = {
            "m.change_password": {"enabled": change_password},
            "m.room_versions": room_versions_capability(default_room_version),
            "m.set_displayname": {"enabled": set_displayname},
            "m.set_avatar_url": {"enabled": set_avatar_url},
            "m.3pid_changes": {"enabled": False},
            "m.get_login_token": {"enabled": False},
        }

    def register_routes(self, resource) -> None:
        """Add this class's endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register("GET", "/_matrix/client/versions", self.get_versions)
        resource.register("GET", "/.well-known/matrix/client", self.get_well_known)
        resource.register("GET", client_paths("/capabilities"), self.get_capabilities)

    def get_versions(self, request):
        """``GET /_matrix/client/versions``."""
        return 200, self._versions

    def get_well_known(self, request):
        """``GET /.well-known/matrix/client``: the base URL, or 404 when none is configured."""
        if not self._public_baseurl:
            raise MatrixError(404, "M_NOT_FOUND", "No client discovery information is configured")
        return 200, {"m.homeserver": {"base_url": self._public_baseurl}}

    async def get_capabilities(self, request):
        """``GET /capabilities`` (needs an access token)."""
        await self._authenticator.authenticate(request)
        return 200, {"capabilities": self._capabilities}
