"""Firmware bridge against the C simulator (pty, TCP) and the C firmware tests."""
