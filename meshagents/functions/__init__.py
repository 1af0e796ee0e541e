"""Catalog functions, one module per function, in a folder per domain."""
