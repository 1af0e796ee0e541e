"""WireGuard functions."""
