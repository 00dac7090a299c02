"""Membership-inference attacks and leakage metrics: arrays and models in, results out."""
