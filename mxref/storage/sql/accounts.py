"""SQL implementation of :class:`~mxref.storage.interfaces.IAccountStore`.

Tables: ``users``, ``devices``, ``access_tokens``, ``profiles``.

Spec: Client-Server API "Account registration and management", "Login",
"Device management", "Profiles".
"""

import collections

from twisted.internet import defer
from zope.interface import implementer

from mxref.storage.interfaces import IAccountStore
from mxref.storage.records import DeviceRecord, Profile, TokenOwner, UserRecord

_DEVICE_COLUMNS = "user_id, device_id, display_name, created_ts, last_seen_ts, last_seen_ip"


@implementer(IAccountStore)
class SqlAccountStore:
    """Users, devices, access tokens and profiles in SQL.

    :param database: a :class:`~mxref.storage.database.Database`.
    :param token_cache_size: how many access tokens' owners to keep in memory (every
        authenticated request looks one up; all deletions of tokens go through this store,
        which forgets them here too).
    """

    def __init__(self, database, token_cache_size=10000):
        self._db = database
        self._token_cache_size = token_cache_size
        self._token_owners = collections.OrderedDict()  # token -> TokenOwner
        self._token_deletions = 0  # so that a look-up overtaken by a deletion is not remembered

    def _deleting_tokens(self, d, matches):
        """Forget the remembered tokens ``matches(token, owner)`` selects, now and when the
        deletion ``d`` has finished; returns ``d``."""

        def forget(result=None):
            self._token_deletions += 1
            for token, owner in list(self._token_owners.items()):
                if matches(token, owner):
                    del self._token_owners[token]
            return result

        forget()
        return d.addBoth(forget)

    def _changed(self, description, sql, *args):
        """Run one write statement; Deferred firing with whether it changed a row."""

        def txn_func(txn):
            txn.execute(sql, args)
            return txn.rowcount > 0

        return self._db.run_interaction(description, txn_func)

    def create_user(self, user_id, password_hash, is_admin=False, created_ts=0, user_type=None, is_guest=False):
        """See :meth:`IAccountStore.create_user`."""
        return self._changed(
            "create_user",
            "INSERT INTO users (user_id, password_hash, is_admin, is_guest, created_ts, user_type, deactivated)"
            " VALUES (?, ?, ?, ?, ?, ?, 0) ON CONFLICT (user_id) DO NOTHING",
            user_id, password_hash, int(bool(is_admin)), int(bool(is_guest)), created_ts, user_type,
        )

    def get_user(self, user_id):
        """See :meth:`IAccountStore.get_user`."""
        d = self._db.execute(
            "get_user",
            "SELECT user_id, password_hash, is_admin, is_guest, created_ts, user_type, deactivated"
            " FROM users WHERE user_id = ?",
            user_id,
        )

        def to_record(rows):
            if not rows:
                return None
            row = rows[0]
            return UserRecord(row[0], row[1], bool(row[2]), bool(row[3]), row[4], row[5], bool(row[6]))

        d.addCallback(to_record)
        return d

    def set_password_hash(self, user_id, password_hash):
        """See :meth:`IAccountStore.set_password_hash`."""
        return self._changed(
            "set_password_hash", "UPDATE users SET password_hash = ? WHERE user_id = ?", password_hash, user_id
        )

    def deactivate(self, user_id):
        """See :meth:`IAccountStore.deactivate`."""

        def txn_func(txn):
            txn.execute("UPDATE users SET deactivated = 1, password_hash = NULL WHERE user_id = ?", (user_id,))
            existed = txn.rowcount > 0
            txn.execute("DELETE FROM access_tokens WHERE user_id = ?", (user_id,))
            txn.execute("DELETE FROM devices WHERE user_id = ?", (user_id,))
            return existed

        return self._deleting_tokens(
            self._db.run_interaction("deactivate", txn_func), lambda _t, owner: owner.user_id == user_id
        )

    def create_device(self, user_id, device_id, display_name=None, created_ts=0):
        """See :meth:`IAccountStore.create_device`."""
        return self._changed(
            "create_device",
            "INSERT INTO devices (user_id, device_id, display_name, created_ts) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id, device_id) DO NOTHING",
            user_id, device_id, display_name, created_ts,
        )

    def get_device(self, user_id, device_id):
        """See :meth:`IAccountStore.get_device`."""
        d = self._db.execute(
            "get_device",
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE user_id = ? AND device_id = ?",
            user_id,
            device_id,
        )
        d.addCallback(lambda rows: DeviceRecord(*rows[0]) if rows else None)
        return d

    def get_devices(self, user_id):
        """See :meth:`IAccountStore.get_devices`."""
        d = self._db.execute("get_devices", f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE user_id = ?", user_id)
        d.addCallback(lambda rows: {row[1]: DeviceRecord(*row) for row in rows})
        return d

    def set_device_display_name(self, user_id, device_id, display_name):
        """See :meth:`IAccountStore.set_device_display_name`."""
        return self._changed(
            "set_device_display_name",
            "UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?",
            display_name, user_id, device_id,
        )

    def record_device_seen(self, user_id, device_id, ts, ip):
        """See :meth:`IAccountStore.record_device_seen`."""
        d = self._changed(
            "record_device_seen",
            "UPDATE devices SET last_seen_ts = ?, last_seen_ip = ? WHERE user_id = ? AND device_id = ?",
            ts, ip, user_id, device_id,
        )
        d.addCallback(lambda _: None)
        return d

    def delete_device(self, user_id, device_id):
        """See :meth:`IAccountStore.delete_device`."""

        def txn_func(txn):
            txn.execute("DELETE FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id))
            existed = txn.rowcount > 0
            txn.execute("DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?", (user_id, device_id))
            return existed

        return self._deleting_tokens(
            self._db.run_interaction("delete_device", txn_func),
            lambda _t, owner: (owner.user_id, owner.device_id) == (user_id, device_id),
        )

    def add_access_token(self, user_id, device_id, token, created_ts):
        """See :meth:`IAccountStore.add_access_token`."""

        def txn_func(txn):
            txn.execute(
                "INSERT INTO access_tokens (token, user_id, device_id, created_ts) VALUES (?, ?, ?, ?)",
                (token, user_id, device_id, created_ts),
            )

        return self._db.run_interaction("add_access_token", txn_func)

    def get_user_by_access_token(self, token):
        """See :meth:`IAccountStore.get_user_by_access_token`."""
        owner = self._token_owners.get(token)
        if owner is not None:
            self._token_owners.move_to_end(token)
            return defer.succeed(owner)
        deletions = self._token_deletions

        def loaded(rows):
            if not rows:
                return None
            owner = TokenOwner(rows[0][0], rows[0][1], bool(rows[0][2]))
            if self._token_deletions == deletions:
                self._token_owners[token] = owner
                while len(self._token_owners) > self._token_cache_size:
                    self._token_owners.popitem(last=False)
            return owner

        d = self._db.execute(
            "get_user_by_access_token",
            "SELECT t.user_id, t.device_id, u.is_guest FROM access_tokens t"
            " LEFT JOIN users u ON u.user_id = t.user_id WHERE t.token = ?",
            token,
        )
        d.addCallback(loaded)
        return d

    def delete_access_token(self, token):
        """See :meth:`IAccountStore.delete_access_token`."""
        return self._deleting_tokens(
            self._changed("delete_access_token", "DELETE FROM access_tokens WHERE token = ?", token),
            lambda t, _owner: t == token,
        )

    def delete_access_tokens_for_device(self, user_id, device_id, except_token=None):
        """See :meth:`IAccountStore.delete_access_tokens_for_device`."""

        def txn_func(txn):
            txn.execute(
                "DELETE FROM access_tokens WHERE user_id = ? AND device_id = ? AND token <> ?",
                (user_id, device_id, except_token or ""),
            )
            return txn.rowcount

        return self._deleting_tokens(
            self._db.run_interaction("delete_access_tokens_for_device", txn_func),
            lambda t, owner: (owner.user_id, owner.device_id) == (user_id, device_id) and t != except_token,
        )

    def delete_all_access_tokens(self, user_id, except_token=None):
        """See :meth:`IAccountStore.delete_all_access_tokens`."""

        def txn_func(txn):
            if except_token is None:
                txn.execute("DELETE FROM access_tokens WHERE user_id = ?", (user_id,))
            else:
                txn.execute("DELETE FROM access_tokens WHERE user_id = ? AND token <> ?", (user_id, except_token))
            return txn.rowcount

        return self._deleting_tokens(
            self._db.run_interaction("delete_all_access_tokens", txn_func),
            lambda t, owner: owner.user_id == user_id and t != except_token,
        )

    def get_profile(self, user_id):
        """See :meth:`IAccountStore.get_profile`."""
        d = self._db.execute("get_profile", "SELECT displayname, avatar_url FROM profiles WHERE user_id = ?", user_id)
        d.addCallback(lambda rows: Profile(*rows[0]) if rows else None)
        return d

    def _set_profile_field(self, column, user_id, value):
        def txn_func(txn):
            txn.upsert("profiles", {"user_id": user_id}, {column: value})

        return self._db.run_interaction(f"set_{column}", txn_func)

    def set_displayname(self, user_id, displayname):
        """See :meth:`IAccountStore.set_displayname`."""
        return self._set_profile_field("displayname", user_id, displayname)

    def set_avatar_url(self, user_id, avatar_url):
        """See :meth:`IAccountStore.set_avatar_url`."""
        return self._set_profile_field("avatar_url", user_id, avatar_url)
