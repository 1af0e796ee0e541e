"""The agent's units (what they grant), the journal, the options and the device-signed leave request."""

from __future__ import annotations

from pathlib import Path

import pytest
from nacl.signing import SigningKey

from meshagents.enroll import journal
from meshagents.enroll.flow import Options
from meshagents.enroll.service import ServiceSpec, login_script, system_unit, termux_boot, user_unit
from meshagents.errors import FnError
from meshagents.trust import leave
from meshagents.trust.signing import public_b64

pytestmark = pytest.mark.unit

SPEC = ServiceSpec(
    python="/opt/meshagents/bin/python", config=Path("/var/lib/meshagents/device_agent/config.json"),
    state=Path("/var/lib/meshagents"), wg_unit="wg-quick@wg0.service", groups=("systemd-journal",),
    home=Path("/home/pi"),
)  # fmt: skip


def test_the_system_unit_runs_the_agent_unprivileged_after_the_root_tunnel_unit() -> None:
    unit = system_unit(SPEC)
    lines = unit.splitlines()
    assert "User=meshagents" in lines and "Group=meshagents" in lines
    assert "CapabilityBoundingSet=" in lines and "NoNewPrivileges=yes" in lines
    assert "SupplementaryGroups=systemd-journal" in lines
    assert "After=network-online.target wg-quick@wg0.service" in lines
    # a profile may name /tmp or /home; bubblewrap needs user namespaces
    # ProtectHostname: its seccomp filter stops bwrap's sethostname in the sandbox's own UTS namespace
    for absent in (
        "PrivateTmp",
        "ProtectHome",
        "ProtectHostname",
        "RestrictNamespaces",
        "PrivateUsers",
        "User=root",
    ):
        assert absent not in unit
    assert "ExecStart=/opt/meshagents/bin/python -m meshagents.apps.device_agent --config" in unit
    assert "/fn " not in unit  # not a checkout's launcher


def test_user_termux_and_login_scripts_name_the_same_agent() -> None:
    argv = "/opt/meshagents/bin/python -m meshagents.apps.device_agent --config"
    assert "WantedBy=default.target" in user_unit(SPEC) and argv in user_unit(SPEC)
    boot = termux_boot(SPEC)
    assert boot.startswith("#!/data/data/com.termux/files/usr/bin/sh\n") and "termux-wake-lock" in boot
    assert argv in boot
    login = login_script(SPEC)
    assert "flock -n" in login and argv in login


def test_journal_round_trip_and_pending(tmp_path: Path) -> None:
    assert journal.load(tmp_path) is None
    jr = journal.Journal(token="mat1.x.y", token_id="t" * 16, device_name="pi", options={"interface": "wg0"})
    jr.done += ["submit", "wireguard"]
    journal.save(tmp_path, jr)
    again = journal.load(tmp_path)
    assert again is not None and again.pending() == ["mesh", "agent_config", "service", "ready"]
    assert (journal.path(tmp_path).stat().st_mode & 0o777) == 0o600
    journal.path(tmp_path).write_text('{"version": 99}')
    with pytest.raises(FnError) as exc:
        journal.load(tmp_path)
    assert exc.value.code == "enroll_journal_invalid"


def test_options_survive_the_journal() -> None:
    opts = Options(token="T", interface="wd1", config_dir=Path("/x"), out_dir=Path("/y"), service="user")
    assert Options.from_json("T", opts.to_json()) == opts
    assert "token" not in opts.to_json()


def test_leave_request_is_the_devices_own() -> None:
    key = SigningKey.generate()
    pub = public_b64(key)
    body = leave.request("pi", key, now=1000)
    leave.check(body, "pi", pub, now=1010)
    for mutate, code in [
        ({"device_id": "other"}, "leave_invalid"),
        ({"nonce": "changed"}, "leave_signature_invalid"),
        ({"extra": 1}, "leave_invalid"),
    ]:
        with pytest.raises(FnError) as exc:
            leave.check({**body, **mutate}, "pi", pub, now=1010)
        assert exc.value.code == code
    with pytest.raises(FnError) as exc:
        leave.check(body, "pi", public_b64(SigningKey.generate()), now=1010)
    assert exc.value.code == "leave_signature_invalid"
    with pytest.raises(FnError) as exc:
        leave.check(body, "pi", pub, now=1000 + leave.MAX_AGE_S + 1)
    assert exc.value.code == "leave_expired"
