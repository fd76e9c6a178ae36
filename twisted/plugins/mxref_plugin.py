"""The twistd drop-in: ``twistd -n mxref`` runs the homeserver built by :mod:`mxref.tap`."""

from twisted.application.service import ServiceMaker

mxref = ServiceMaker(
    "mxref",
    "mxref.tap",
    "A Matrix homeserver (Client-Server and Federation APIs).",
    "mxref",
)
