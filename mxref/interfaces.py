"""The public surface third parties implement or use: module interfaces and their result
values, the module API, and the storage interfaces (a deployment may provide its own storage
by passing an object with these interfaces' attributes to :class:`mxref.homeserver.HomeServer`).

Everything here is re-exported from where it lives; ``__all__`` is pinned by a test, so a
change to this list is a deliberate change of mxref's public contract.
"""

from mxref.modules.api import ModuleApi
from mxref.modules.interfaces import (
    Allow,
    IEventChecker,
    IEventListener,
    IInviteChecker,
    ILoginChecker,
    IModule,
    IModuleFactory,
    IPasswordProvider,
    IRegistrationChecker,
    IResourceProvider,
    IRoomCreationChecker,
    Reject,
    ReplaceContent,
)
from mxref.rooms.interfaces import IRemoteRooms
from mxref.storage.interfaces import (
    IAccountStore,
    IClientDataStore,
    IEventStore,
    IFederationStore,
    IRoomStore,
    IStateStore,
)

__all__ = [
    "Allow",
    "IAccountStore",
    "IClientDataStore",
    "IEventChecker",
    "IEventListener",
    "IEventStore",
    "IFederationStore",
    "IInviteChecker",
    "ILoginChecker",
    "IModule",
    "IModuleFactory",
    "IPasswordProvider",
    "IRegistrationChecker",
    "IRemoteRooms",
    "IResourceProvider",
    "IRoomCreationChecker",
    "IRoomStore",
    "IStateStore",
    "ModuleApi",
    "Reject",
    "ReplaceContent",
]
