"""Tests for mxref.auth."""
