"""Tests for the Client-Server API features in mxref.client."""
