"""Tests for the attacks library."""
