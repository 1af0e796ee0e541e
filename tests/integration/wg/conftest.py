"""The mesh rig for the WireGuard layer's integration tests."""

from __future__ import annotations

from tests.testbed.mesh import mesh, mesh_factory  # noqa: F401
