"""Firmware bridge protocol: pure tests."""
