"""Audit splits: membership drawn by the service's coin."""
