"""mxref: a Matrix homeserver on Twisted, written to be read as a reference implementation."""

__version__ = "0.1.0"
