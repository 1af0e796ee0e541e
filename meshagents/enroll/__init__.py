"""Putting a device on the mesh and keeping it there: ``meshagents enroll``, ``leave``, ``agent upgrade``.

A library with a pure core and a thin I/O shell:

- ``precheck``  what must hold before the one-use token is spent (pure: Facts + Needs -> Problems)
- ``probe``     gathers those Facts on this device (reads, looks up, one bubblewrap run)
- ``journal``   the record of one enrollment in the state dir, for ``--resume`` and ``leave``
- ``service``   the agent's unit / boot script (pure renderers) and installing it
- ``flow``      the steps in order, with ``[n/m]`` progress, in one process
- ``leave``, ``upgrade``   the other two commands; ``cli`` their click front
"""
