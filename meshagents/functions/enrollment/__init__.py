"""Catalog functions of the enrollment domain (trust core)."""
