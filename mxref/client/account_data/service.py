"""Reading and writing a user's account data, and waking their ``/sync`` when it changes.

Spec: Client-Server API, "Client config"
(https://spec.matrix.org/v1.19/client-server-api/#client-config): account
data is only visible to the user who set it and reaches their clients in
``/sync`` (global data in ``account_data``, per-room data in each room's
``account_data``). The access token must be authorised for ``userId`` (else
403 ``M_FORBIDDEN``); types the server manages (``m.fully_read``,
``m.push_rules``) cannot be set here (405 ``M_BAD_JSON``); reading an unset
type gives 404 ``M_NOT_FOUND``; a malformed ``roomId`` gives 400
``M_INVALID_PARAM``.
"""

from twisted.internet import defer

from mxref.client.filters.service import check_own_user
from mxref.errors import InvalidIdentifier, MatrixError
from mxref.types import RoomID

#: The notifier stream carrying account data positions.
ACCOUNT_DATA_STREAM = "account_data"

#: Account data types the server controls; clients use other endpoints to change them.
SERVER_MANAGED_TYPES = frozenset({"m.fully_read", "m.push_rules"})


def _check_room_id(room_id) -> None:
    try:
        RoomID.parse(room_id)
    except (InvalidIdentifier, ValueError):
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid room ID: {room_id!r}")


class AccountDataService:
    """Account data of local users.

    :param client_data: an :class:`~mxref.storage.interfaces.IClientDataStore`.
    :param notifier: the :class:`~mxref.notifier.Notifier`; each write is
        announced on the ``"account_data"`` stream naming its owner.
    """

    def __init__(self, client_data, notifier):
        self._client_data = client_data
        self._notifier = notifier

    @defer.inlineCallbacks
    def set_account_data(self, requester, user_id, room_id, data_type, content):
        """Replace one account data entry of the requesting user.

        :param room_id: ``None`` for global account data.
        :param content: the new content (a dict).
        :returns: Deferred firing with the entry's account-data stream position.
        :raises MatrixError: 403, 405 or 400 as the module docstring says.
        """
        check_own_user(requester, user_id)
        if room_id is not None:
            _check_room_id(room_id)
        if data_type in SERVER_MANAGED_TYPES:
            raise MatrixError(405, "M_BAD_JSON", f"Cannot set {data_type} through this API")
        position = yield self._client_data.put_account_data(user_id, room_id, data_type, content)
        self._notifier.notify(ACCOUNT_DATA_STREAM, position, user_ids=[user_id])
        return position

    @defer.inlineCallbacks
    def get_account_data(self, requester, user_id, room_id, data_type):
        """One account data entry of the requesting user.

        :param room_id: ``None`` for global account data.
        :returns: Deferred firing with the content dict.
        :raises MatrixError: 403 for another user, 400 for a malformed room
            ID, 404 ``M_NOT_FOUND`` when the entry is unset.
        """
        check_own_user(requester, user_id)
        if room_id is not None:
            _check_room_id(room_id)
        content = yield self._client_data.get_account_data(user_id, room_id, data_type)
        if content is None:
            raise MatrixError(404, "M_NOT_FOUND", f"No account data of type {data_type}")
        return content
