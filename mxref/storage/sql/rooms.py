"""SQL implementation of :class:`~mxref.storage.interfaces.IRoomStore`.

Tables: ``rooms``, ``room_aliases`` + ``room_alias_servers``,
``room_memberships`` (current membership per room and user, maintained by
``persist_events``), ``forgotten_rooms`` and ``room_stats_current`` (member counts and name, topic,
... copied from current state by ``persist_events``).

Spec: Client-Server API "Room aliases", "Listing rooms" (``/publicRooms``),
"Joined rooms"; Server-Server API "Room directory".
"""

from twisted.internet import defer
from zope.interface import implementer

from mxref.storage.interfaces import IRoomStore
from mxref.storage.records import AliasRecord, Member, PublicRoomsPage, RoomRecord, RoomStats, UserMembership
from mxref.storage.sql.current_state import MEMBER, read_current_state_ids_txn

_STATS_COLUMNS = (
    "s.room_id, COALESCE(s.joined_members, 0), COALESCE(s.invited_members, 0), s.name, s.topic,"
    " s.avatar_url, s.canonical_alias, s.join_rule, s.history_visibility, s.guest_access, s.room_type"
)


def _stats_from_row(row):
    return RoomStats(*row[:1], int(row[1]), int(row[2]), *row[3:])


def _like_pattern(search):
    escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@implementer(IRoomStore)
class SqlRoomStore:
    """Rooms, aliases, directory and memberships in SQL.

    :param database: a :class:`~mxref.storage.database.Database`.
    """

    def __init__(self, database):
        self._db = database
        # A room's version never changes once the room is stored: remembered after the
        # first read (this is asked on every event sent).
        self._versions = {}

    def store_room(self, room_id, room_version, creator, is_public, created_ts):
        """See :meth:`IRoomStore.store_room`."""

        def txn_func(txn):
            txn.execute(
                "INSERT INTO rooms (room_id, room_version, creator, is_public, created_ts)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id) DO NOTHING",
                (room_id, room_version, creator, int(bool(is_public)), created_ts),
            )
            return txn.rowcount == 1

        def stored(created):
            if created:
                self._versions[room_id] = room_version
            return created

        return self._db.run_interaction("store_room", txn_func).addCallback(stored)

    def get_room(self, room_id):
        """See :meth:`IRoomStore.get_room`."""
        d = self._db.execute(
            "get_room",
            "SELECT room_id, room_version, creator, is_public, created_ts FROM rooms WHERE room_id = ?",
            room_id,
        )
        d.addCallback(
            lambda rows: RoomRecord(rows[0][0], rows[0][1], rows[0][2], bool(rows[0][3]), rows[0][4])
            if rows else None
        )
        return d

    def get_room_version(self, room_id):
        """See :meth:`IRoomStore.get_room_version`."""
        if room_id in self._versions:
            return defer.succeed(self._versions[room_id])

        def loaded(rows):
            if not rows:
                return None
            self._versions[room_id] = rows[0][0]
            return rows[0][0]

        d = self._db.execute("get_room_version", "SELECT room_version FROM rooms WHERE room_id = ?", room_id)
        d.addCallback(loaded)
        return d

    def set_room_is_public(self, room_id, is_public):
        """See :meth:`IRoomStore.set_room_is_public`."""

        def txn_func(txn):
            txn.execute("UPDATE rooms SET is_public = ? WHERE room_id = ?", (int(bool(is_public)), room_id))

        return self._db.run_interaction("set_room_is_public", txn_func)

    def create_alias(self, alias, room_id, creator, servers):
        """See :meth:`IRoomStore.create_alias`."""

        def txn_func(txn):
            txn.execute(
                "INSERT INTO room_aliases (room_alias, room_id, creator) VALUES (?, ?, ?)"
                " ON CONFLICT (room_alias) DO NOTHING",
                (alias, room_id, creator),
            )
            if txn.rowcount != 1:
                return False
            txn.execute_many(
                "INSERT INTO room_alias_servers (room_alias, server) VALUES (?, ?)",
                [(alias, server) for server in dict.fromkeys(servers)],
            )
            return True

        return self._db.run_interaction("create_alias", txn_func)

    def get_alias(self, alias):
        """See :meth:`IRoomStore.get_alias`."""

        def txn_func(txn):
            row = txn.execute(
                "SELECT room_id, creator FROM room_aliases WHERE room_alias = ?", (alias,)
            ).fetchone()
            if row is None:
                return None
            servers = txn.select(
                "SELECT server FROM room_alias_servers WHERE room_alias = ? ORDER BY server", (alias,)
            )
            return AliasRecord(alias, row[0], row[1], tuple(s for (s,) in servers))

        return self._db.run_interaction("get_alias", txn_func)

    def delete_alias(self, alias):
        """See :meth:`IRoomStore.delete_alias`."""

        def txn_func(txn):
            room_id = txn.select_value("SELECT room_id FROM room_aliases WHERE room_alias = ?", (alias,))
            if room_id is not None:
                txn.execute("DELETE FROM room_aliases WHERE room_alias = ?", (alias,))
                txn.execute("DELETE FROM room_alias_servers WHERE room_alias = ?", (alias,))
            return room_id

        return self._db.run_interaction("delete_alias", txn_func)

    def get_aliases_for_room(self, room_id):
        """See :meth:`IRoomStore.get_aliases_for_room`."""
        d = self._db.execute(
            "get_aliases_for_room",
            "SELECT room_alias FROM room_aliases WHERE room_id = ? ORDER BY room_alias",
            room_id,
        )
        d.addCallback(lambda rows: [row[0] for row in rows])
        return d

    def get_room_stats(self, room_id):
        """See :meth:`IRoomStore.get_room_stats`."""
        d = self._db.execute(
            "get_room_stats",
            f"SELECT {_STATS_COLUMNS} FROM room_stats_current s WHERE s.room_id = ?",
            room_id,
        )
        d.addCallback(lambda rows: _stats_from_row(rows[0]) if rows else None)
        return d

    def get_public_rooms(self, limit=None, since=None, search=None):
        """See :meth:`IRoomStore.get_public_rooms`."""
        offset = max(0, since or 0)

        def txn_func(txn):
            where = "r.is_public = 1"
            args = []
            if search:
                pattern = _like_pattern(search)
                where += (
                    " AND (LOWER(s.name) LIKE ? ESCAPE '\\' OR LOWER(s.topic) LIKE ? ESCAPE '\\'"
                    " OR LOWER(s.canonical_alias) LIKE ? ESCAPE '\\')"
                )
                args += [pattern, pattern, pattern]
            base = f"FROM rooms r LEFT JOIN room_stats_current s ON s.room_id = r.room_id WHERE {where}"
            total = txn.select_value(f"SELECT COUNT(*) {base}", args)
            sql = (
                f"SELECT r.room_id, COALESCE(s.joined_members, 0), COALESCE(s.invited_members, 0),"
                f" s.name, s.topic, s.avatar_url, s.canonical_alias, s.join_rule,"
                f" s.history_visibility, s.guest_access, s.room_type {base}"
                f" ORDER BY COALESCE(s.joined_members, 0) DESC, r.room_id"
            )
            if limit is not None:
                rows = txn.select(sql + " LIMIT ? OFFSET ?", args + [limit, offset])
            else:
                rows = txn.select(sql, args)[offset:]
            rooms = [_stats_from_row(row) for row in rows]
            end = offset + len(rooms)
            next_offset = end if limit is not None and end < total else None
            prev_offset = max(0, offset - (limit or offset)) if offset > 0 else None
            return PublicRoomsPage(rooms, next_offset, prev_offset, int(total))

        return self._db.run_interaction("get_public_rooms", txn_func)

    def get_rooms_for_user(self, user_id, memberships=("join",)):
        """See :meth:`IRoomStore.get_rooms_for_user`."""

        def txn_func(txn):
            sql = (
                "SELECT room_id, membership, event_id, stream_ordering FROM room_memberships"
                " WHERE user_id = ?"
            )
            args = [user_id]
            if memberships is not None:
                wanted = list(memberships)
                if not wanted:
                    return []
                sql += f" AND membership IN ({', '.join('?' for _ in wanted)})"
                args += wanted
            return [UserMembership(*row) for row in txn.select(sql + " ORDER BY room_id", args)]

        return self._db.run_interaction("get_rooms_for_user", txn_func)

    def get_members(self, room_id, membership=None, at_stream=None):
        """See :meth:`IRoomStore.get_members`."""

        def txn_func(txn):
            if at_stream is None:
                sql = "SELECT user_id, membership, event_id FROM room_memberships WHERE room_id = ?"
                args = [room_id]
                if membership is not None:
                    sql += " AND membership = ?"
                    args.append(membership)
                return {row[0]: Member(*row) for row in txn.select(sql, args)}
            state = read_current_state_ids_txn(txn, room_id, [(MEMBER, None)], at_stream)
            by_event = {event_id: user_id for (_, user_id), event_id in state.items()}
            members = {}
            for event_id, event_membership in txn.select_in(
                "SELECT event_id, membership FROM events WHERE {in_list}", "event_id", list(by_event)
            ):
                if event_membership is not None and membership in (None, event_membership):
                    user_id = by_event[event_id]
                    members[user_id] = Member(user_id, event_membership, event_id)
            return members

        return self._db.run_interaction("get_members", txn_func)

    def get_joined_hosts(self, room_id):
        """See :meth:`IRoomStore.get_joined_hosts`."""
        d = self._db.execute(
            "get_joined_hosts",
            "SELECT user_id FROM room_memberships WHERE room_id = ? AND membership = 'join'",
            room_id,
        )
        d.addCallback(lambda rows: {user_id.split(":", 1)[1] for (user_id,) in rows if ":" in user_id})
        return d

    def get_membership_changes(self, user_id, from_stream, to_stream=None):
        """See :meth:`IRoomStore.get_membership_changes`."""

        def txn_func(txn):
            sql = (
                "SELECT room_id, membership, event_id, stream_ordering FROM room_memberships"
                " WHERE user_id = ? AND stream_ordering > ?"
            )
            args = [user_id, from_stream or 0]
            if to_stream is not None:
                sql += " AND stream_ordering <= ?"
                args.append(to_stream)
            rows = txn.select(sql + " ORDER BY stream_ordering, room_id", args)
            return [UserMembership(*row) for row in rows]

        return self._db.run_interaction("get_membership_changes", txn_func)

    def forget_room(self, user_id, room_id):
        """See :meth:`IRoomStore.forget_room`."""

        def txn_func(txn):
            position = txn.select_value(
                "SELECT stream_ordering FROM room_memberships WHERE room_id = ? AND user_id = ?",
                (room_id, user_id),
            )
            if position is None:
                return False
            txn.upsert(
                "forgotten_rooms", {"user_id": user_id, "room_id": room_id}, {"stream_ordering": position}
            )
            return True

        return self._db.run_interaction("forget_room", txn_func)

    def get_forgotten_room_ids(self, user_id):
        """See :meth:`IRoomStore.get_forgotten_room_ids`."""
        d = self._db.execute(
            "get_forgotten_room_ids",
            "SELECT f.room_id FROM forgotten_rooms f JOIN room_memberships m"
            " ON m.room_id = f.room_id AND m.user_id = f.user_id"
            " WHERE f.user_id = ? AND m.stream_ordering <= f.stream_ordering",
            user_id,
        )
        d.addCallback(lambda rows: {room_id for (room_id,) in rows})
        return d
