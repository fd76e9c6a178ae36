"""Tests for the room services (mxref.rooms)."""
