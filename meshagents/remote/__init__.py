"""Remote runs over SSH: ``./fn run --host HOST <id> [params]``.

    bundle.py   what is shipped: the project's code plus the wheels it needs,
                unpacked for the remote's Python and machine (pure, cached)
    sshcmd.py   the OpenSSH command lines and the mapping of ssh failures to codes
    runner.py   the I/O shell: probe, upload when missing, run, stream, record
    entry.py    what runs on the remote: reads the call from stdin (never argv)

The operator's ~/.ssh/config, keys and agent apply, because the real ssh client runs.
Parameters travel on ssh's stdin, never on a command line (a remote ``ps`` would show
them); the remote needs only ``python3`` (>= 3.11) and ``tar``.
"""
