"""Pure helpers: room names and power levels, message bodies, the registration MAC,
the Synapse config, the handled-events table and private files."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from meshagents.errors import FnError
from meshagents.fsutil import read_json, write_private
from meshagents.matrix import rooms
from meshagents.matrix.admin import registration_mac
from meshagents.matrix.client.sync import sync_filter
from meshagents.matrix.homeserver import synapse_config
from meshagents.matrix.ops import compose
from meshagents.matrix.store import HandledEvents

pytestmark = pytest.mark.unit


def test_alias_and_name_checks() -> None:
    assert rooms.alias_localpart("dev", "home-wsl") == "dev-home-wsl"
    assert rooms.alias_localpart("cont", "web.1") == "cont-web.1"
    assert rooms.full_alias("dev-x", "hub") == "#dev-x:hub"
    for bad in ("", "Home", "a b", "-x", "x" * 64, "é"):
        with pytest.raises(FnError) as err:
            rooms.alias_localpart("dev", bad)
        assert err.value.code == "bad_device_name"
    with pytest.raises(FnError) as err:
        rooms.alias_localpart("vm", "x")  # type: ignore[arg-type]
    assert err.value.code == "bad_room_kind"
    assert rooms.server_of("@a:hub.example:8448") == "hub.example:8448"
    with pytest.raises(FnError):
        rooms.server_of("alice")


def test_power_levels_roles() -> None:
    pl = rooms.power_levels(["@op:h"], "@bot:h", "@dev-x:h")
    assert pl["users"] == {"@op:h": 100, "@bot:h": 50, "@dev-x:h": 0}
    assert pl["events_default"] == 0 and pl["invite"] == 50
    assert pl["events"]["m.room.encryption"] == 100
    # An operator who is also named as bot keeps admin.
    assert rooms.power_levels(["@op:h"], "@op:h", None)["users"] == {"@op:h": 100}


def test_approvals_room_levels_devices_read_only() -> None:
    pl = rooms.approvals_power_levels(["@op:h"], "@bot:h")
    assert pl["users"] == {"@op:h": 100, "@bot:h": 100}
    assert pl["events_default"] == 50 and pl["users_default"] == 0  # a device at 0 cannot post
    assert rooms.approvals_levels_fixed(pl, ["@op:h"], "@bot:h") is None
    old = rooms.power_levels(["@op:h"], None, None) | {"users": {"@op:h": 100, "@bot:h": 100}}
    fixed = rooms.approvals_levels_fixed(old, ["@op:h", "@op2:h"], "@bot:h")
    assert fixed is not None and fixed["events_default"] == 50
    assert fixed["users"]["@op2:h"] == 50 and fixed["users"]["@op:h"] == 100
    assert rooms.approvals_levels_fixed({**pl, "users_default": 50}, ["@op:h"], "@bot:h") is not None


def test_message_content_and_code_blocks() -> None:
    c = rooms.message_content("hi", notice=True, html="<b>hi</b>", reply_to="$e")
    assert c == {
        "msgtype": "m.notice",
        "body": "hi",
        "format": "org.matrix.custom.html",
        "formatted_body": "<b>hi</b>",
        "m.relates_to": {"m.in_reply_to": {"event_id": "$e"}},
    }
    assert rooms.message_content("x") == {"msgtype": "m.text", "body": "x"}
    plain, html = compose("out:", code="a<b\n", language="sh")
    assert plain == "out:\n```sh\na<b\n\n```"
    assert html == 'out:<pre><code class="language-sh">a&lt;b\n</code></pre>'
    assert compose("plain") == ("plain", None)
    assert compose("", code="x")[1] == "<pre><code>x</code></pre>"


def test_registration_mac_matches_synapse_spec() -> None:
    want = hmac.new(b"s3cret", b"n0nce\x00alice\x00pw\x00admin", hashlib.sha1).hexdigest()
    assert registration_mac("s3cret", "n0nce", "alice", "pw", True) == want
    assert registration_mac("s3cret", "n0nce", "alice", "pw", False) != want


def test_synapse_config_has_the_field_notes_overrides(tmp_path: Path) -> None:
    secrets = {"registration_shared_secret": "r", "macaroon_secret_key": "m", "form_secret": "f"}
    cfg = synapse_config(tmp_path, "127.0.0.1", 18008, "localhost", secrets)
    (listener,) = cfg["listeners"]
    assert listener["bind_addresses"] == ["127.0.0.1"] and listener["port"] == 18008
    assert listener["resources"] == [{"names": ["client"], "compress": False}]
    assert cfg["database"]["name"] == "sqlite3"
    assert cfg["bcrypt_rounds"] == 4 and cfg["trusted_key_servers"] == []
    assert cfg["presence"] == {"enabled": False} and cfg["default_room_version"] == "11"
    assert cfg["rc_message"]["per_second"] >= 10000 and cfg["rc_login"]["account"]["burst_count"] >= 100000
    assert cfg["registration_shared_secret"] == "r"
    # rig-only tuning (bench_load): nothing per event that no client of this server uses
    assert cfg["push"] == {"enabled": False} and cfg["stats"] == {"enabled": False}
    assert cfg["user_directory"] == {"enabled": False} and cfg["update_user_directory_from_worker"]
    assert cfg["federation_sender_instances"] == [] and cfg["federation_domain_whitelist"] == []


def test_sync_filter_asks_only_for_what_the_clients_read() -> None:
    f = sync_filter(100)
    nothing = {"not_types": ["*"]}
    assert f["presence"] == nothing and f["account_data"] == nothing
    room = f["room"]
    assert room["ephemeral"] == nothing and room["account_data"] == nothing  # typing, receipts
    # the timeline and the state (membership, encryption) stay whole: the crypto needs them
    assert room["timeline"] == {"limit": 100} and "state" not in room
    assert set(f) == {"presence", "account_data", "room"}  # nio.AsyncClient.upload_filter's arguments
    shown = sync_filter(100, ephemeral=True)["room"]  # a client that shows typing (an operator's)
    assert "ephemeral" not in shown and shown["account_data"] == nothing
    # the device agent's: its own events left out of the timelines, never the state
    own = sync_filter(100, not_sender="@dev:hub")["room"]
    assert own["timeline"] == {"limit": 100, "not_senders": ["@dev:hub"]} and "state" not in own


def test_handled_events_survive_reopen(tmp_path: Path) -> None:
    db = HandledEvents(tmp_path / "h.sqlite")
    assert db.mark("$a", "!r") and not db.mark("$a", "!r")
    assert db.seen("$a") and not db.seen("$b")
    db.close()
    again = HandledEvents(tmp_path / "h.sqlite")
    assert again.seen("$a") and again.count() == 1
    again.close()


def test_private_files_are_0600_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_private(path, {"k": "v"})
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_json(path) == {"k": "v"}
    assert read_json(tmp_path / "missing.json") is None
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_settings_load_and_errors(state_dir: Path) -> None:
    from meshagents.matrix.settings import Credentials, load_settings, settings_path

    with pytest.raises(FnError) as err:
        load_settings()
    assert err.value.code == "matrix_not_configured"
    settings_path().write_text(
        'homeserver = "http://127.0.0.1:8008/"\nserver_name = "hub"\noperators = ["@a:hub"]\n'
    )
    s = load_settings()
    assert (s.homeserver, s.server_name, s.operators, s.bot, s.actor) == (
        "http://127.0.0.1:8008",
        "hub",
        ("@a:hub",),
        None,
        None,
    )
    with pytest.raises(FnError) as err:
        s.shared_secret()
    assert err.value.code == "matrix_not_configured"
    settings_path().write_text('server_name = "hub"\n')
    with pytest.raises(FnError) as err:
        load_settings()
    assert "homeserver" in err.value.message
    creds = Credentials("http://h", "@d:hub", "pw")
    creds.save(state_dir / "c" / "credentials.json")
    assert Credentials.load(state_dir / "c" / "credentials.json") == creds
    cfg = creds.client_config(state_dir / "c", "agent", operators=("@a:hub",))
    assert cfg.store_dir == state_dir / "c" / "stores" / "agent"
    assert cfg.cross_signing_path == state_dir / "c" / "cross_signing.json"
