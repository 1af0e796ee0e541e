"""The hub host's files as pure functions of its flags: units, Synapse, Caddy, nftables, TOML merge."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshagents.errors import FnError
from meshagents.hubhost import caddy, firewall, synapse_conf, tomlmerge, units
from meshagents.hubhost.spec import make_spec, packages

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]


def spec(**kw: object):  # type: ignore[no-untyped-def]
    base: dict[str, object] = {"domain": "hub.example.org", "tls": "internal", "matrix": "embedded"}
    base.update(kw)
    return make_spec(**base)  # type: ignore[arg-type]


def test_units_run_as_the_service_user_with_only_the_capability_the_hub_needs() -> None:
    out = units.render_all(spec(), ROOT)
    assert set(out) == {
        "meshagents-wg_hub.service",
        "meshagents-agents_and_robots.service",
        "meshagents-agents_dashboard.service",
        "meshagents-synapse.service",
        "meshagents-firewall.service",
    }
    hub = out["meshagents-wg_hub.service"]
    assert "User=meshagents" in hub and "AmbientCapabilities=CAP_NET_ADMIN" in hub
    assert "CapabilityBoundingSet=CAP_NET_ADMIN" in hub and "ReadWritePaths=/etc/wireguard" in hub
    assert "ExecStart=/opt/meshagents/bin/fn app wg_hub --config /etc/meshagents/wg_hub.toml" in hub
    for name in (
        "meshagents-wg_hub.service",
        "meshagents-agents_and_robots.service",
        "meshagents-agents_dashboard.service",
        "meshagents-synapse.service",
    ):
        text = out[name]
        assert (
            "Restart=on-failure" in text and "ProtectSystem=strict" in text and "NoNewPrivileges=yes" in text
        )
        assert "PrivateTmp=yes" in text and "StateDirectory=" in text and "User=root" not in text
    for name in (
        "meshagents-agents_and_robots.service",
        "meshagents-agents_dashboard.service",
        "meshagents-synapse.service",
    ):
        assert "CapabilityBoundingSet=\n" in out[name]
        assert "AmbientCapabilities" not in out[name]
    bot = out["meshagents-agents_and_robots.service"]
    assert "After=network-online.target meshagents-wg_hub.service meshagents-synapse.service" in bot
    assert "--host 10.42.0.1 --host 127.0.0.1" in out["meshagents-agents_dashboard.service"]
    fw = out["meshagents-firewall.service"]
    assert (
        "DefaultDependencies=no" in fw
        and "Before=network-pre.target" in fw
        and "WantedBy=sysinit.target" in fw
    )
    assert "Restart=" not in fw and "Type=oneshot" in fw and "RemainAfterExit=yes" in fw


def test_units_without_embedded_synapse_do_not_wait_for_it() -> None:
    s = spec(
        matrix="existing",
        homeserver_url="https://matrix.example.org",
        registration_secret_file=Path("/root/secret"),
    )
    out = units.render_all(s, ROOT)
    assert "meshagents-synapse.service" not in out
    assert "meshagents-synapse" not in out["meshagents-agents_and_robots.service"]


def test_rendering_is_deterministic() -> None:
    assert units.render_all(spec(), ROOT) == units.render_all(spec(), ROOT)
    assert caddy.caddyfile(spec()) == caddy.caddyfile(spec())


def test_synapse_production_settings() -> None:
    cfg = synapse_conf.homeserver_config(spec())
    assert cfg["server_name"] == "hub.example.org"
    assert cfg["database"]["name"] == "psycopg2" and cfg["database"]["args"]["host"] == "/var/run/postgresql"
    assert cfg["bcrypt_rounds"] >= 12 and cfg["enable_registration"] is False
    assert cfg["registration_shared_secret_path"].endswith("registration_secret")
    assert "registration_shared_secret" not in cfg and "macaroon_secret_key" not in cfg  # secrets elsewhere
    assert cfg["max_upload_size"] == "50M" and cfg["federation_domain_whitelist"] == []
    assert cfg["federation_sender_instances"] == []  # no federation: no per-event sender pass
    # Element users on phones: push rules, user search and room stats stay Synapse's defaults
    assert "push" not in cfg and "user_directory" not in cfg and "stats" not in cfg
    listener = cfg["listeners"][0]
    assert listener["bind_addresses"] == ["127.0.0.1", "10.42.0.1"] and listener["x_forwarded"] is True
    assert cfg["public_baseurl"] == "https://hub.example.org/"
    assert yaml.safe_load(synapse_conf.dump(cfg)) == cfg
    plain = synapse_conf.homeserver_config(spec(domain=None, tls=None, server_name="hub.mesh"))
    assert (
        plain["public_baseurl"] == "http://10.42.0.1:8008/" and plain["listeners"][0]["x_forwarded"] is False
    )


def test_caddy_internal_and_acme() -> None:
    text = caddy.caddyfile(spec())
    assert "\ttls internal" in text and "skip_install_trust" in text
    assert '{"m.homeserver":{"base_url":"https://hub.example.org"}}' in text
    assert "reverse_proxy 127.0.0.1:8008" in text and "reverse_proxy 127.0.0.1:8443" in text
    assert "handle /enroll* {" in text and "handle /_matrix/* {" in text
    acme = caddy.caddyfile(spec(tls="acme"))
    assert "tls internal" not in acme and "local_certs" not in acme


def test_firewall_opens_only_what_is_public() -> None:
    assert firewall.public_tcp_ports(spec()) == [22, 443]
    assert firewall.public_tcp_ports(spec(tls="acme")) == [22, 80, 443]
    assert firewall.public_tcp_ports(spec(domain=None, tls=None, server_name="hub.mesh")) == [22, 8443]
    assert firewall.public_tcp_ports(spec(ssh_port=2222)) == [443, 2222]
    rules = firewall.rules(spec())
    assert "policy drop;" in rules and "udp dport 51820 accept" in rules
    assert 'iifname "wg0" ip saddr 10.42.0.0/24 accept' in rules
    assert "tcp dport { 22, 443 } accept" in rules
    # an atomic replace script: declare, delete, define
    lines = [line for line in rules.splitlines() if not line.startswith("#")]
    assert lines[:2] == ["table inet meshagents_host", "delete table inet meshagents_host"]


def test_bad_flag_combinations() -> None:
    with pytest.raises(FnError) as e:
        make_spec(domain=None, tls="internal", matrix="embedded")
    assert e.value.code == "bad_usage"
    with pytest.raises(FnError) as e:
        make_spec(domain="hub.example.org", tls=None, matrix="existing")
    assert e.value.code == "bad_usage"
    with pytest.raises(FnError) as e:
        make_spec(domain="not a domain", tls=None, matrix="embedded")
    assert e.value.code == "bad_domain"
    with pytest.raises(FnError):
        make_spec(domain=None, tls=None, matrix="embedded")
    assert make_spec(domain="Hub.Example.org.", tls=None, matrix="embedded").tls == "acme"
    assert "caddy" in packages(spec()) and "postgresql" in packages(spec())
    assert "caddy" not in packages(spec(domain=None, tls=None, server_name="x.mesh"))


HAND = """# my notes about this hub
interface = "wg0"
public_port = 8443
profiles_dir = "/srv/my-profiles"   # mine

[matrix]
homeserver_url = "http://10.42.0.1:8008"
server_name = "hub.example.org"
room_alias_prefix = "fleet-"
"""


def test_merge_keeps_hand_edits_and_comments() -> None:
    same, changed = tomlmerge.merge(
        HAND, {"interface": "wg0", "public_port": 8443, "matrix.server_name": "hub.example.org"}
    )
    assert same == HAND and changed == []
    text, changed = tomlmerge.merge(HAND, {"public_port": 9443, "approvers": ["@op:hub.example.org"]})
    assert sorted(changed) == ["approvers", "public_port"]
    assert "# my notes about this hub" in text and "# mine" in text
    data = tomllib.loads(text)
    assert data["public_port"] == 9443 and data["profiles_dir"] == "/srv/my-profiles"
    assert data["matrix"]["room_alias_prefix"] == "fleet-"
    fresh, changed = tomlmerge.merge(None, {"a": 1, "t.b": "x"}, header="written by test")
    assert tomllib.loads(fresh) == {"a": 1, "t": {"b": "x"}} and fresh.startswith("# written by test")
    again, changed = tomlmerge.merge(fresh, {"a": 1, "t.b": "x"})
    assert again == fresh and changed == []
    with pytest.raises(FnError):
        tomlmerge.merge("not = = toml", {"a": 1})


_keys = st.sampled_from(["interface", "public_port", "approvers", "events_period_s", "matrix.server_name"])
_text = st.text(alphabet="abz09@:.-_ ", max_size=12)
_vals = st.one_of(st.integers(1, 65535), _text, st.lists(_text, max_size=3))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _vals, max_size=5), st.dictionaries(_keys, _vals, max_size=5))
def test_merge_is_idempotent_and_keeps_what_it_does_not_own(first: dict, second: dict) -> None:  # type: ignore[type-arg]
    base, _ = tomlmerge.merge(HAND, first)
    once, _ = tomlmerge.merge(base, second)
    twice, changed = tomlmerge.merge(once, second)
    assert twice == once and changed == []
    data = tomllib.loads(once)
    assert data["profiles_dir"] == "/srv/my-profiles" and data["matrix"]["room_alias_prefix"] == "fleet-"
    for key, value in second.items():
        node = data
        for part in key.split(".")[:-1]:
            node = node[part]
        assert node[key.split(".")[-1]] == value
