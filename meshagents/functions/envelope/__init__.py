"""Catalog functions of the envelope domain (trust core)."""
