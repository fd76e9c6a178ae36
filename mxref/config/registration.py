"""Who may create accounts: open registration, registration tokens, and the admin shared secret.

Client-Server API, "Account registration"
(https://spec.matrix.org/v1.19/client-server-api/#account-registration-and-management).
The shared-secret registration used by ``mxref-register`` is Synapse's admin
API (``/_synapse/admin/v1/register``), not part of the Matrix spec; see
:mod:`mxref.auth.shared_secret`.

As in Synapse, turning on open registration with no check at all (no
registration token) is refused unless
``enable_registration_without_verification`` says the operator means it:
such a server is quickly filled with spam accounts.
"""

import attrs

from mxref.config.reader import ConfigError, ConfigReader


@attrs.frozen
class RegistrationConfig:
    """Registration settings.

    :ivar enable_registration: anyone may register through ``POST /register``.
    :ivar enable_registration_without_verification: allow open registration with no token.
    :ivar registration_requires_token: ``POST /register`` needs an ``m.login.registration_token`` stage.
    :ivar registration_shared_secret: the secret for admin registration, or ``None`` to disable it.
    :ivar allow_guest_access: allow ``POST /register?kind=guest``.
    """

    enable_registration: bool = False
    enable_registration_without_verification: bool = False
    registration_requires_token: bool = False
    registration_shared_secret: str | None = attrs.field(default=None, repr=False)
    allow_guest_access: bool = False

    @classmethod
    def read(cls, reader: ConfigReader) -> "RegistrationConfig":
        """Read the top-level registration keys."""
        secret = reader.string("registration_shared_secret", None)
        secret_path = reader.path("registration_shared_secret_path", None)
        if secret is not None and secret_path is not None:
            raise ConfigError(
                "registration_shared_secret_path",
                "cannot be used together with registration_shared_secret",
            )
        if secret_path is not None:
            try:
                with open(secret_path, encoding="utf-8") as f:
                    secret = f.read().strip()
            except OSError as e:
                raise ConfigError(
                    "registration_shared_secret_path", f"cannot read {secret_path}: {e.strerror}"
                )
        if secret is not None and not secret:
            raise ConfigError("registration_shared_secret", "must not be empty")

        config = cls(
            enable_registration=reader.boolean("enable_registration", False),
            enable_registration_without_verification=reader.boolean(
                "enable_registration_without_verification", False
            ),
            registration_requires_token=reader.boolean("registration_requires_token", False),
            registration_shared_secret=secret,
            allow_guest_access=reader.boolean("allow_guest_access", False),
        )
        if (
            config.enable_registration
            and not config.registration_requires_token
            and not config.enable_registration_without_verification
        ):
            raise ConfigError(
                "enable_registration",
                "open registration without any verification invites spam accounts; set "
                "registration_requires_token: true, or enable_registration_without_verification: true "
                "if you really mean it",
            )
        return config
