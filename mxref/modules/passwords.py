"""Password checks that ask the modules' password providers before the local database.

:class:`ProviderCredentialChecker` stands in for
:class:`~mxref.client.account.service.CredentialChecker` wherever a password is checked
(``POST /login`` with ``m.login.password`` and the ``m.login.password`` stage of
interactive authentication), so an :class:`~mxref.modules.interfaces.IPasswordProvider`
(LDAP, say) can accept a password mxref does not hold.
"""

from twisted.logger import Logger


class ProviderCredentialChecker:
    """A :class:`~mxref.client.account.service.CredentialChecker` with password providers.

    :param credentials: the local :class:`~mxref.client.account.service.CredentialChecker`.
    :param hooks: the :class:`~mxref.modules.hooks.ModuleHooks`.
    """

    log = Logger()

    def __init__(self, credentials, hooks):
        self._credentials = credentials
        self._hooks = hooks
        self.server_name = credentials.server_name

    def candidate_user_ids(self, user_text: str) -> list:
        """See :meth:`CredentialChecker.candidate_user_ids` (not a Deferred)."""
        return self._credentials.candidate_user_ids(user_text)

    async def find_user(self, user_text: str):
        """See :meth:`CredentialChecker.find_user`."""
        return await self._credentials.find_user(user_text)

    def canonical_user_id(self, user_text: str):
        """See :meth:`CredentialChecker.canonical_user_id` (not a Deferred)."""
        return self._credentials.canonical_user_id(user_text)

    async def check_password(self, user_text: str, password: str):
        """Ask the providers (in configuration order), then the local database.

        A provider's acceptance counts only for an existing, active account (a provider
        creates accounts it vouches for with ``api.register_user``).

        :returns: (coroutine) the user ID when the password is accepted, else ``None``.
        :raises MatrixError: 403 when a ``fail_closed`` provider fails.
        """
        user_id = self._credentials.canonical_user_id(user_text)
        if user_id is not None and await self._hooks.check_password(user_id, password):
            user = await self._credentials.find_user(user_id)
            if user is not None and not user.deactivated:
                return user.user_id
            self.log.warn(
                "a password provider accepted {user_id}, which has no active account",
                user_id=user_id,
            )
        return await self._credentials.check_password(user_text, password)
