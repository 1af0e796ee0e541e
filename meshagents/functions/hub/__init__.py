"""Catalog functions around the wg_hub service (device side of enrollment, mesh checks)."""
