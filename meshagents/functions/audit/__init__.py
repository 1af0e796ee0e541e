"""Catalog functions of the audit domain (trust core)."""
