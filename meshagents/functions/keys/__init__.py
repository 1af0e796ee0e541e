"""Catalog functions of the keys domain (trust core)."""
