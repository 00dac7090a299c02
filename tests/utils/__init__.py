"""Helpers and factories shared by the tests (test modules never import each other)."""
