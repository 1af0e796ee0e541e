"""Catalog functions of the capability domain (trust core)."""
