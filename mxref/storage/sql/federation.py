"""SQL implementation of :class:`~mxref.storage.interfaces.IFederationStore`.

Tables: ``received_transactions``, ``destinations``, ``server_keys``.

Spec: Server-Server API "Transactions" (a transaction ID is unique per
origin, so a retried one gets the same answer), "Retrieving server keys".
"""

from zope.interface import implementer

from mxref.storage.database import decode_json, encode_json
from mxref.storage.interfaces import IFederationStore
from mxref.storage.records import DestinationRecord, ReceivedTransaction, ServerKey

_DESTINATION_COLUMNS = (
    "destination, retry_last_ts, retry_interval, failure_ts, last_successful_stream_ordering"
)


@implementer(IFederationStore)
class SqlFederationStore:
    """Federation bookkeeping in SQL.

    :param database: a :class:`~mxref.storage.database.Database`.
    """

    def __init__(self, database):
        self._db = database

    def get_received_txn(self, origin, txn_id):
        """See :meth:`IFederationStore.get_received_txn`."""
        d = self._db.execute(
            "get_received_txn",
            "SELECT response_code, response_json, received_ts FROM received_transactions"
            " WHERE origin = ? AND txn_id = ?",
            origin,
            txn_id,
        )
        d.addCallback(
            lambda rows: ReceivedTransaction(origin, txn_id, rows[0][0], decode_json(rows[0][1]), rows[0][2])
            if rows else None
        )
        return d

    def set_received_txn(self, origin, txn_id, response_code, response, received_ts):
        """See :meth:`IFederationStore.set_received_txn`."""

        def txn_func(txn):
            txn.upsert(
                "received_transactions",
                {"origin": origin, "txn_id": txn_id},
                {"response_code": response_code, "response_json": encode_json(response), "received_ts": received_ts},
            )

        return self._db.run_interaction("set_received_txn", txn_func)

    def get_destination(self, destination):
        """See :meth:`IFederationStore.get_destination`."""
        d = self._db.execute(
            "get_destination",
            f"SELECT {_DESTINATION_COLUMNS} FROM destinations WHERE destination = ?",
            destination,
        )
        d.addCallback(lambda rows: DestinationRecord(*rows[0]) if rows else None)
        return d

    def set_destination_retry(self, destination, retry_last_ts, retry_interval, failure_ts):
        """See :meth:`IFederationStore.set_destination_retry`."""

        def txn_func(txn):
            txn.upsert(
                "destinations",
                {"destination": destination},
                {"retry_last_ts": retry_last_ts, "retry_interval": retry_interval, "failure_ts": failure_ts},
            )

        return self._db.run_interaction("set_destination_retry", txn_func)

    def set_destination_last_successful_stream_ordering(self, destination, stream_ordering):
        """See :meth:`IFederationStore.set_destination_last_successful_stream_ordering`."""

        def txn_func(txn):
            txn.execute(
                "INSERT INTO destinations (destination, retry_last_ts, retry_interval,"
                " last_successful_stream_ordering) VALUES (?, 0, 0, ?)"
                " ON CONFLICT (destination) DO UPDATE"
                " SET last_successful_stream_ordering = excluded.last_successful_stream_ordering",
                (destination, stream_ordering),
            )

        return self._db.run_interaction("set_destination_last_successful_stream_ordering", txn_func)

    def get_destinations_behind(self, stream_ordering):
        """See :meth:`IFederationStore.get_destinations_behind`."""
        d = self._db.execute(
            "get_destinations_behind",
            f"SELECT {_DESTINATION_COLUMNS} FROM destinations"
            " WHERE last_successful_stream_ordering < ? ORDER BY destination",
            stream_ordering,
        )
        d.addCallback(lambda rows: [DestinationRecord(*row) for row in rows])
        return d

    def store_server_keys(self, server_name, key_id, verify_key_b64, valid_until_ts, from_server, key_json):
        """See :meth:`IFederationStore.store_server_keys`."""

        def txn_func(txn):
            txn.upsert(
                "server_keys",
                {"server_name": server_name, "key_id": key_id, "from_server": from_server},
                {
                    "verify_key_b64": verify_key_b64,
                    "valid_until_ts": valid_until_ts,
                    "key_json": encode_json(key_json),
                },
            )

        return self._db.run_interaction("store_server_keys", txn_func)

    def get_server_keys(self, server_name, key_ids):
        """See :meth:`IFederationStore.get_server_keys`."""

        def txn_func(txn):
            columns = "key_id, verify_key_b64, valid_until_ts, from_server, key_json"
            if key_ids is None:
                rows = txn.select(f"SELECT {columns} FROM server_keys WHERE server_name = ?", (server_name,))
            else:
                rows = txn.select_in(
                    f"SELECT {columns} FROM server_keys WHERE server_name = ? AND {{in_list}}",
                    "key_id",
                    list(dict.fromkeys(key_ids)),
                    args_before=(server_name,),
                )
            keys = {}
            for key_id, verify_key, valid_until_ts, from_server, key_json in rows:
                best = keys.get(key_id)
                if best is None or (valid_until_ts, from_server) > (best.valid_until_ts, best.from_server):
                    keys[key_id] = ServerKey(
                        server_name, key_id, verify_key, valid_until_ts, from_server, decode_json(key_json)
                    )
            return keys

        return self._db.run_interaction("get_server_keys", txn_func)
