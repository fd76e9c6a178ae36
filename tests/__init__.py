"""Tests for mxref.

Hypothesis runs with no per-example deadline and without the "too slow" health check: the
suite runs in parallel (``trial -j``) on small CI machines, where timing is not a property of
the code under test.
"""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "mxref",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("mxref")
