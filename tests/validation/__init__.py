"""Validation of the attacks on real small models (slow)."""
