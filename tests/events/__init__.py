"""Tests for the pure protocol core, mxref.events."""
