"""SQL implementation of :class:`~mxref.storage.interfaces.IClientDataStore`.

Tables: ``account_data`` (on the ``account_data`` stream), ``filters`` (IDs
from the ``filters`` counter) and ``receipts`` (on the ``receipts`` stream).

Spec: Client-Server API "Client config" (account data), "Filtering",
"Receipts".
"""

from twisted.internet import defer
from zope.interface import implementer

from mxref.storage.database import decode_json, encode_json
from mxref.storage.interfaces import IClientDataStore
from mxref.storage.records import AccountDataChanges, Receipt

# Filter IDs are stored as BIGINT; longer digit strings cannot name one.
_MAX_FILTER_ID_DIGITS = 18


@implementer(IClientDataStore)
class SqlClientDataStore:
    """Account data, filters and receipts in SQL.

    :param database: a :class:`~mxref.storage.database.Database`.
    """

    def __init__(self, database):
        self._db = database

    def _position(self, name):
        d = self._db.execute(f"{name}_position", "SELECT value FROM counters WHERE name = ?", name)
        d.addCallback(lambda rows: rows[0][0])
        return d

    def put_account_data(self, user_id, room_id, data_type, content):
        """See :meth:`IClientDataStore.put_account_data`."""

        def txn_func(txn):
            stream_id = txn.next_counter_value("account_data")
            txn.upsert(
                "account_data",
                {"user_id": user_id, "room_id": room_id or "", "data_type": data_type},
                {"content_json": encode_json(content), "stream_id": stream_id},
            )
            return stream_id

        return self._db.run_interaction("put_account_data", txn_func)

    def get_account_data(self, user_id, room_id, data_type):
        """See :meth:`IClientDataStore.get_account_data`."""
        d = self._db.execute(
            "get_account_data",
            "SELECT content_json FROM account_data WHERE user_id = ? AND room_id = ? AND data_type = ?",
            user_id,
            room_id or "",
            data_type,
        )
        d.addCallback(lambda rows: decode_json(rows[0][0]) if rows else None)
        return d

    def get_account_data_since(self, user_id, from_stream):
        """See :meth:`IClientDataStore.get_account_data_since`."""
        d = self._db.execute(
            "get_account_data_since",
            "SELECT room_id, data_type, content_json FROM account_data"
            " WHERE user_id = ? AND stream_id > ? ORDER BY stream_id",
            user_id,
            from_stream or 0,
        )

        def to_changes(rows):
            global_data, room_data = {}, {}
            for room_id, data_type, content_json in rows:
                if room_id:
                    room_data.setdefault(room_id, {})[data_type] = decode_json(content_json)
                else:
                    global_data[data_type] = decode_json(content_json)
            return AccountDataChanges(global_data, room_data)

        d.addCallback(to_changes)
        return d

    def get_account_data_position(self):
        """See :meth:`IClientDataStore.get_account_data_position`."""
        return self._position("account_data")

    def add_filter(self, user_id, filter_json):
        """See :meth:`IClientDataStore.add_filter`."""

        def txn_func(txn):
            filter_id = txn.next_counter_value("filters")
            txn.execute(
                "INSERT INTO filters (user_id, filter_id, filter_json) VALUES (?, ?, ?)",
                (user_id, filter_id, encode_json(filter_json)),
            )
            return str(filter_id)

        return self._db.run_interaction("add_filter", txn_func)

    def get_filter(self, user_id, filter_id):
        """See :meth:`IClientDataStore.get_filter`."""
        if not (filter_id.isascii() and filter_id.isdigit()) or len(filter_id) > _MAX_FILTER_ID_DIGITS:
            return defer.succeed(None)
        d = self._db.execute(
            "get_filter",
            "SELECT filter_json FROM filters WHERE user_id = ? AND filter_id = ?",
            user_id,
            int(filter_id),
        )
        d.addCallback(lambda rows: decode_json(rows[0][0]) if rows else None)
        return d

    def put_receipt(self, room_id, receipt_type, user_id, event_id, data, thread_id=None):
        """See :meth:`IClientDataStore.put_receipt`."""

        def txn_func(txn):
            stream_id = txn.next_counter_value("receipts")
            txn.upsert(
                "receipts",
                {
                    "room_id": room_id,
                    "receipt_type": receipt_type,
                    "user_id": user_id,
                    "thread_id": thread_id or "",
                },
                {"event_id": event_id, "data_json": encode_json(data), "stream_id": stream_id},
            )
            return stream_id

        return self._db.run_interaction("put_receipt", txn_func)

    def get_receipts_since(self, room_ids, from_stream, to_stream=None):
        """See :meth:`IClientDataStore.get_receipts_since`."""

        def txn_func(txn):
            upper = "" if to_stream is None else " AND stream_id <= ?"
            rows = txn.select_in(
                "SELECT room_id, receipt_type, user_id, thread_id, event_id, data_json, stream_id"
                " FROM receipts WHERE {in_list} AND stream_id > ?" + upper,
                "room_id",
                list(dict.fromkeys(room_ids)),
                args_after=[from_stream or 0] + ([] if to_stream is None else [to_stream]),
            )
            receipts = [
                Receipt(r[0], r[1], r[2], r[3] or None, r[4], decode_json(r[5]), r[6]) for r in rows
            ]
            return sorted(receipts, key=lambda receipt: receipt.stream_id)

        return self._db.run_interaction("get_receipts_since", txn_func)

    def get_receipts_position(self):
        """See :meth:`IClientDataStore.get_receipts_position`."""
        return self._position("receipts")
