"""HTTP endpoints for accounts: each parses the request, authenticates it, calls one service method, answers JSON.

Every class here registers its routes on a
:class:`~mxref.http.resource.JsonResource` with :meth:`register_routes`;
client endpoints are served under both ``/_matrix/client/v3`` and the legacy
``/_matrix/client/r0`` (:func:`~mxref.http.resource.client_paths`).

Spec (v1.19), Client-Server API: ``GET``/``POST /login``, ``POST /logout``,
``POST /logout/all``, ``POST /register``, ``GET /register/available``,
``GET /account/whoami``, ``GET /devices``, ``GET``/``PUT``/``DELETE
/devices/{deviceId}``, ``POST /delete_devices``, ``POST /account/password``,
``POST /account/deactivate``. ``/_synapse/admin/v1/register`` is Synapse's
shared-secret registration admin API (not in the spec).
"""

from mxref.errors import MatrixError
from mxref.http.request import parse_json_object, parse_string, require_fields
from mxref.http.resource import client_paths
from mxref.http.site import client_ip

#: Where Synapse (and so ``register_new_matrix_user`` and ``mxref-register``) expects shared-secret registration.
SHARED_SECRET_REGISTER_PATH = "/_synapse/admin/v1/register"


class LoginResource:
    """``GET``/``POST /login``, ``POST /logout``, ``POST /logout/all`` and ``GET /account/whoami``.

    :param login: a :class:`~mxref.client.account.service.LoginService`.
    :param authenticator: a :class:`~mxref.auth.tokens.RequestAuthenticator`.
    """

    def __init__(self, login, authenticator):
        self._login = login
        self._authenticator = authenticator

    def register_routes(self, resource) -> None:
        """Add this class's endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register("GET", client_paths("/login"), self.get_login)
        resource.register("POST", client_paths("/login"), self.post_login)
        resource.register("POST", client_paths("/logout"), self.post_logout)
        resource.register("POST", client_paths("/logout/all"), self.post_logout_all)
        resource.register("GET", client_paths("/account/whoami"), self.get_whoami)

    def get_login(self, request):
        """``GET /login``: the supported login types."""
        return 200, self._login.login_flows()

    async def post_login(self, request):
        """``POST /login``: a new access token (and device) for valid credentials."""
        body = parse_json_object(request)
        return 200, await self._login.login(body, client_ip(request))

    async def post_logout(self, request):
        """``POST /logout``: end this token's session (clients send no body)."""
        requester = await self._authenticator.authenticate(request)
        await self._login.logout(requester)
        return 200, {}

    async def post_logout_all(self, request):
        """``POST /logout/all``: end every session of the user."""
        requester = await self._authenticator.authenticate(request)
        await self._login.logout_all(requester)
        return 200, {}

    async def get_whoami(self, request):
        """``GET /account/whoami``: who this token belongs to."""
        requester = await self._authenticator.authenticate(request)
        return 200, await self._login.whoami(requester)


class RegistrationResource:
    """``POST /register`` and ``GET /register/available``.

    :param registrar: an :class:`~mxref.client.account.service.AccountRegistrar`.
    """

    def __init__(self, registrar):
        self._registrar = registrar

    def register_routes(self, resource) -> None:
        """Add this class's endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register("POST", client_paths("/register"), self.post_register)
        resource.register("GET", client_paths("/register/available"), self.get_available)

    async def post_register(self, request):
        """``POST /register?kind=user|guest``: a new account, after user-interactive auth."""
        kind = parse_string(request, "kind", default="user", allowed={"user", "guest"})
        body = parse_json_object(request)
        return 200, await self._registrar.register(kind, body, client_ip(request))

    async def get_available(self, request):
        """``GET /register/available?username=``: ``{available: true}`` or a 400 saying why not."""
        username = parse_string(request, "username", required=True)
        return 200, {"available": await self._registrar.check_username_available(username)}


def _device_id_list(body) -> list:
    require_fields(body, {"devices": list})
    devices = body["devices"]
    if not all(isinstance(device_id, str) for device_id in devices):
        raise MatrixError(400, "M_BAD_JSON", "Parameter devices must be a list of strings")
    return devices


class DeviceResource:
    """``GET /devices``, ``GET``/``PUT``/``DELETE /devices/{deviceId}`` and ``POST /delete_devices``.

    :param devices: a :class:`~mxref.client.account.service.DeviceService`.
    :param authenticator: a :class:`~mxref.auth.tokens.RequestAuthenticator`.
    """

    def __init__(self, devices, authenticator):
        self._devices = devices
        self._authenticator = authenticator

    def register_routes(self, resource) -> None:
        """Add this class's endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register("GET", client_paths("/devices"), self.get_devices)
        resource.register("GET", client_paths("/devices/{deviceId}"), self.get_device)
        resource.register("PUT", client_paths("/devices/{deviceId}"), self.put_device)
        resource.register("DELETE", client_paths("/devices/{deviceId}"), self.delete_device)
        resource.register("POST", client_paths("/delete_devices"), self.post_delete_devices)

    async def get_devices(self, request):
        """``GET /devices``: all the user's devices."""
        requester = await self._authenticator.authenticate(request)
        return 200, {"devices": await self._devices.list_devices(requester)}

    async def get_device(self, request, device_id):
        """``GET /devices/{deviceId}``: one device, or 404."""
        requester = await self._authenticator.authenticate(request)
        return 200, await self._devices.get_device(requester, device_id)

    async def put_device(self, request, device_id):
        """``PUT /devices/{deviceId}``: rename a device."""
        requester = await self._authenticator.authenticate(request)
        body = parse_json_object(request)
        await self._devices.update_device(requester, device_id, body)
        return 200, {}

    async def delete_device(self, request, device_id):
        """``DELETE /devices/{deviceId}``: delete a device after a password stage."""
        requester = await self._authenticator.authenticate(request)
        body = parse_json_object(request, allow_empty_body=True)
        await self._devices.delete_devices(requester, [device_id], body.get("auth"))
        return 200, {}

    async def post_delete_devices(self, request):
        """``POST /delete_devices``: delete several devices after a password stage."""
        requester = await self._authenticator.authenticate(request)
        body = parse_json_object(request)
        await self._devices.delete_devices(requester, _device_id_list(body), body.get("auth"))
        return 200, {}


class AccountSecurityResource:
    """``POST /account/password`` and ``POST /account/deactivate`` (access token optional).

    :param security: an :class:`~mxref.client.account.service.AccountSecurity`.
    :param authenticator: a :class:`~mxref.auth.tokens.RequestAuthenticator`.
    """

    def __init__(self, security, authenticator):
        self._security = security
        self._authenticator = authenticator

    def register_routes(self, resource) -> None:
        """Add this class's endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register("POST", client_paths("/account/password"), self.post_password)
        resource.register("POST", client_paths("/account/deactivate"), self.post_deactivate)

    async def post_password(self, request):
        """``POST /account/password``: set a new password after a password stage."""
        requester = await self._authenticator.authenticate_optional(request)
        body = parse_json_object(request)
        await self._security.change_password(requester, body)
        return 200, {}

    async def post_deactivate(self, request):
        """``POST /account/deactivate``: close the account after a password stage."""
        requester = await self._authenticator.authenticate_optional(request)
        body = parse_json_object(request)
        return 200, await self._security.deactivate(requester, body)


class SharedSecretRegistrationResource:
    """Synapse's ``GET``/``POST /_synapse/admin/v1/register`` (nonce, then HMAC-signed registration).

    :param registrar: an :class:`~mxref.client.account.service.AccountRegistrar`.
    """

    def __init__(self, registrar):
        self._registrar = registrar

    def register_routes(self, resource) -> None:
        """Add this class's endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register("GET", SHARED_SECRET_REGISTER_PATH, self.get_nonce)
        resource.register("POST", SHARED_SECRET_REGISTER_PATH, self.post_register)

    def get_nonce(self, request):
        """``GET``: a single-use nonce."""
        return 200, {"nonce": self._registrar.issue_registration_nonce()}

    async def post_register(self, request):
        """``POST``: create the account the MAC vouches for."""
        body = parse_json_object(request)
        return 200, await self._registrar.register_with_shared_secret(body)
