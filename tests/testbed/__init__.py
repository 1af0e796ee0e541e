"""The test bed: every rig, fixture and helper more than one test area uses.

Test modules, ``bench/`` and the areas' ``conftest.py`` import from here; nothing here
imports a test area or a conftest, so a benchmark can build the same rig a test builds.
An area's ``conftest.py`` only re-exports the fixtures of its rig (pytest finds fixtures
by the names a conftest holds). See docs/testing.md ("Where tests live").
"""
