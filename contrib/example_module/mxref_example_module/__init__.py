"""An example mxref module: refuses ``m.room.message`` events whose ``body`` matches a
configured regular expression, and serves its counts at ``GET /_mxref/example/stats``.

Configuration (``homeserver.yaml``)::

    modules:
      - module: mxref_example_module.PatternRejecter
        config:
          pattern: "(?i)buy cheap"          # a Python regular expression, searched in the body
          errcode: M_FORBIDDEN              # optional
"""

import json
import re

from twisted.web.resource import Resource
from zope.interface import implementer

from mxref.interfaces import Allow, IEventChecker, IModule, IResourceProvider, Reject


@implementer(IModule, IEventChecker, IResourceProvider)
class PatternRejecter:
    """Refuses messages whose body matches ``pattern``; counts what it checked.

    :param config: ``{"pattern": compiled regex, "errcode": str}`` from :meth:`parse_config`.
    :param api: the module's :class:`mxref.interfaces.ModuleApi`.
    """

    name = "example"

    @classmethod
    def parse_config(cls, config):
        """Check the configuration before the module is built.

        :raises ValueError: for a missing or invalid ``pattern``.
        """
        pattern = config.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise ValueError("pattern: a regular expression is required")
        try:
            compiled = re.compile(pattern)
        except re.error as e:
            raise ValueError(f"pattern: not a regular expression: {e}") from None
        errcode = config.get("errcode", "M_FORBIDDEN")
        if not isinstance(errcode, str):
            raise ValueError("errcode: must be a string")
        return {"pattern": compiled, "errcode": errcode}

    def __init__(self, config, api):
        self.pattern = config["pattern"]
        self._errcode = config["errcode"]
        self._api = api
        self.checked = 0
        self.rejected = 0

    def check_event(self, event, origin):
        """Refuse an ``m.room.message`` whose ``body`` matches the pattern."""
        if event.get("type") != "m.room.message":
            return None
        self.checked += 1
        body = event.get("content", {}).get("body")
        if isinstance(body, str) and self.pattern.search(body):
            self.rejected += 1
            self._api.log.info("refused a message from {sender}", sender=event.get("sender"))
            return Reject(self._errcode, "This message is not allowed on this server")
        return Allow()

    def resources(self):
        """``/_mxref/example/stats``."""
        return {"stats": StatsResource(self)}


class StatsResource(Resource):
    """``GET``: ``{"pattern", "checked", "rejected"}`` as JSON."""

    isLeaf = True

    def __init__(self, module):
        super().__init__()
        self._module = module

    def render_GET(self, request):
        """The counts, as JSON."""
        request.setHeader(b"Content-Type", b"application/json")
        body = {
            "pattern": self._module.pattern.pattern,
            "checked": self._module.checked,
            "rejected": self._module.rejected,
        }
        return json.dumps(body).encode("utf-8")
