"""Tests of the federation layer."""
