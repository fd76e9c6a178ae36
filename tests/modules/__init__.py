"""Tests of third-party modules: loading, hooks end to end, failure containment, the example module."""
