"""Profiles of users on other servers, asked for over federation.

Spec: Server-Server API, "Querying for information" > ``GET /_matrix/federation/v1/query/profile``
(https://spec.matrix.org/v1.19/server-server-api/#get_matrixfederationv1queryprofile): the user's
server answers with the profile (or one ``field`` of it), or 404 ``M_NOT_FOUND``.
"""

from twisted.internet import defer
from zope.interface import implementer

from mxref.client.profile.service import IRemoteProfiles
from mxref.errors import MatrixError
from mxref.federation.transport.client import HttpResponseError, RequestFailed
from mxref.types import UserID


@implementer(IRemoteProfiles)
class RemoteProfiles:
    """:class:`~mxref.client.profile.service.IRemoteProfiles` over a federation client.

    :param client: a :class:`~mxref.federation.transport.client.FederationClient`.
    """

    def __init__(self, client):
        self._client = client

    @defer.inlineCallbacks
    def get_profile(self, user_id, field=None):
        """See :meth:`IRemoteProfiles.get_profile`."""
        destination = UserID.parse(user_id).server_name
        try:
            profile = yield self._client.query_profile(destination, user_id, field)
        except HttpResponseError as e:
            if e.code == 404:
                raise MatrixError(404, "M_NOT_FOUND", f"{user_id} has no profile") from None
            raise MatrixError(502, e.errcode, f"{destination} failed to answer the profile query: {e.msg}") from None
        except RequestFailed as e:
            raise MatrixError(404, "M_NOT_FOUND", f"Could not reach {destination}: {e.msg}") from None
        if not isinstance(profile, dict):
            raise MatrixError(502, "M_UNKNOWN", f"{destination} answered the profile query with a non-object")
        return {key: value for key, value in profile.items() if isinstance(value, (str, type(None)))}
