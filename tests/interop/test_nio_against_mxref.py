"""matrix-nio plays the same two-user chat scenario against mxref run as ``twistd mxref``."""

from twisted.trial import unittest

from mxref.testing.processes import MxrefProcess
from tests.interop.test_nio_against_synapse import NioChatScenarioMixin


class NioAgainstMxrefTests(NioChatScenarioMixin, unittest.TestCase):
    """matrix-nio against mxref: registration, rooms, edits, sync and paging work end to end."""

    skip = (
        "mxref does not serve the scenario's endpoints yet: POST /_matrix/client/v3/createRoom and "
        "GET /_matrix/client/v3/sync answer 404 M_UNRECOGNIZED (checked at commit e8ec35c); "
        "remove this skip once they are wired into mxref.homeserver"
    )

    def start_server(self):
        server = MxrefProcess(self.mktemp())
        server.start()
        self.addCleanup(server.stop)
        return server
