"""Tests for mxref.http: routing, request parsing and the Site."""
