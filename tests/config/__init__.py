"""Tests for mxref.config."""
