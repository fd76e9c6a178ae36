"""Tests for mxref.crypto."""
