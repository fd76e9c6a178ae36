"""Tests for mxref."""
