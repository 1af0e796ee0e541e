"""Pure view models: badges, ages, rates, the capability matrix, containers, approvals, audit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshagents.apps.agents_dashboard import views
from tests.unit.apps.agents_dashboard import shapes
from tests.unit.apps.agents_dashboard.shapes import NOW

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("peer", "badge"),
    [
        ({"status": "active", "latest_handshake": NOW - 10}, "online"),
        ({"status": "active", "latest_handshake": NOW - 29.9}, "online"),
        ({"status": "active", "latest_handshake": NOW - 30}, "stale"),
        ({"status": "active", "latest_handshake": None}, "stale"),
        ({"status": "active", "latest_handshake": 0}, "stale"),
        ({"status": "revoked", "latest_handshake": NOW - 1}, "revoked"),
        ({"latest_handshake": "soon"}, "stale"),
    ],
)
def test_badge_threshold(peer: dict[str, object], badge: str) -> None:
    assert views.badge(peer, NOW, stale_after_s=30) == badge


def test_age_and_sizes() -> None:
    assert views.age_text(None) == "never"
    assert views.age_text(5.9) == "5 s"
    assert views.age_text(600) == "10 min"
    assert views.age_text(3 * 3600) == "3 h"
    assert views.age_text(3 * 86400) == "3 d"
    assert views.age_text(-4) == "0 s"  # clock skew between hub and dashboard
    assert views.bytes_text(512) == "512 B"
    assert views.bytes_text(1536) == "1.5 KiB"
    assert views.rate_text(None) == "-"
    assert views.rate_text(2048) == "2.0 KiB/s"


def test_rates_from_samples() -> None:
    r = views.RateTracker()
    assert r.update("k", 1000, 0, 10.0) == (None, None)
    assert r.update("k", 3000, 500, 12.0) == (1000.0, 250.0)
    assert r.update("k", 10, 10, 13.0) == (None, None)  # counters reset (interface restarted)
    r.forget([])
    assert r.rates == {}


@given(st.lists(st.tuples(st.integers(0, 10**12), st.integers(0, 10**12)), min_size=2, max_size=20))
def test_rates_never_negative(samples: list[tuple[int, int]]) -> None:
    r = views.RateTracker()
    for i, (rx, tx) in enumerate(samples):
        rx_rate, tx_rate = r.update("k", rx, tx, float(i))
        assert rx_rate is None or rx_rate >= 0
        assert tx_rate is None or tx_rate >= 0


def test_mesh_rows_split_revoked() -> None:
    live, revoked = views.mesh_rows(shapes.PEERS, {}, NOW, 180)
    assert [r.id for r in live] == ["cont-web", "home-wsl", "pi"]
    assert [r.id for r in revoked] == ["old"]
    assert {r.id: r.badge for r in live} == {"cont-web": "online", "home-wsl": "online", "pi": "stale"}
    assert next(r for r in live if r.id == "pi").handshake_age == "10 min"
    removed = [dict(shapes.PEERS[0], status="removed")]
    assert views.mesh_rows(removed, {}, NOW, 180) == ([], [])


def test_peer_stats_folded_in() -> None:
    peers = [dict(p) for p in shapes.PEERS]
    changed = shapes.PEER_STATS["data"]["changed"]  # type: ignore[index]
    assert views.apply_stats(peers, changed) == 1
    assert peers[0]["rx_bytes"] == 4096 and peers[0]["latest_handshake"] == NOW + 1
    assert views.apply_stats(peers, [{"public_key": "unknown"}]) == 0


def test_device_matrix() -> None:
    m = views.device_matrix(shapes.PEERS, shapes.BOT_DEVICES, NOW)
    assert m.capabilities == [
        "docker.container.list", "docker.container.logs", "shell.exec.ls", "system.reboot",
    ]  # fmt: skip
    rows = {r.id: r for r in m.rows}
    assert set(rows) == {"home-wsl", "pi", "cont-web"}  # old is revoked
    assert not rows["cont-web"].has_manifest and m.manifests_missing == 1
    ws = rows["home-wsl"]
    assert ws.agent_state == "ok" and ws.serial == "3" and not ws.expired
    assert ws.cells[3] == views.Cell(True, True)  # system.reboot needs an approval
    assert rows["pi"].cells == (views.Cell(False), views.Cell(False), views.Cell(True), views.Cell(False))
    assert rows["pi"].agent_state == "degraded"
    no_bot = views.device_matrix(shapes.PEERS, None, NOW)
    assert {r.agent_state for r in no_bot.rows} == {"unknown"}


def test_device_without_manifest_counts() -> None:
    bare = [shapes.peer("x", shapes.KEY_A, "10.42.0.20")]
    m = views.device_matrix(bare, [], NOW)
    assert m.manifests_missing == 1 and m.rows[0].serial == "3" and m.capabilities == []


def test_containers_light_and_deep() -> None:
    rows = views.containers(shapes.PEERS, shapes.BOT_DEVICES)
    got = [(r.host, r.container, r.mode, r.room) for r in rows]
    assert ("home-wsl", "db", "light", "#dev-home-wsl:hub.test") in got
    assert ("home-wsl", "web", "light", "#dev-home-wsl:hub.test") in got
    assert ("home-wsl", "*", "light", "#dev-home-wsl:hub.test") in got  # list covers every container
    assert ("own peer", "web", "deep", "#cont-web") in got


def test_approvals_pending_first_with_link() -> None:
    rows = views.approval_rows(shapes.APPROVALS, NOW)
    assert [r.approval_id for r in rows] == ["ap-1", "ap-old"]
    first = rows[0]
    assert first.pending and first.age == "95 s" and first.expires_in == "58 min"
    assert first.link == "https://matrix.to/#/!ap:hub.test/$e1:hub.test"
    assert views.matrix_to("!a/b:x", "$c?d") == "https://matrix.to/#/!a%2Fb:x/$c%3Fd"
    assert rows[1].expires_in == "expired" and not rows[1].pending
    assert views.matrix_to("", "$x") == ""


def test_audit_summary() -> None:
    ok = views.audit_summary(shapes.AUDIT_OK)
    assert ok.ok and ok.status == "verified" and len(ok.entries) == 20 and ok.entries[0]["seq"] == 30
    broken = views.audit_summary(shapes.AUDIT_BROKEN)
    assert not broken.ok and broken.status == "broken at seq 2" and broken.problem == "hash_mismatch"
    empty = views.audit_summary({"entries": [], "chain": {"ok": True, "head_seq": 0}})
    assert empty.status == "empty"
    assert views.audit_summary({}).status == "broken"


def test_manifest_signature_states() -> None:
    import base64

    from nacl.signing import SigningKey

    from meshagents.trust import manifest as manifest_mod

    op = SigningKey.generate()
    op_pub = base64.b64encode(bytes(op.verify_key)).decode()
    body = shapes.manifest("home-wsl", [{"name": "shell.exec.ls", "requires_approval": False}])
    body.pop("signature")
    body["operator_key"] = op_pub
    signed = manifest_mod.sign(body, op).model_dump(mode="json")
    assert views.manifest_signature(signed, op_pub, NOW) == "signed"
    assert views.manifest_signature(signed, None, NOW) == "self-signed"
    other = base64.b64encode(bytes(SigningKey.generate().verify_key)).decode()
    assert views.manifest_signature(signed, other, NOW) == "bad signature"
    widened = dict(signed, capabilities=[{"name": "shell.exec.rm", "requires_approval": False}])
    assert views.manifest_signature(widened, op_pub, NOW) == "bad signature"
    assert views.manifest_signature(signed, op_pub, signed["expires_at"] + 1) == "expired"
    assert views.manifest_signature(None, op_pub, NOW) == "-"
    peers = [dict(shapes.PEERS[0], manifest=signed)]
    assert views.device_matrix(peers, None, NOW, op_pub).rows[0].signature == "signed"
    assert views.device_matrix(shapes.PEERS, None, NOW).rows[0].signature in ("bad signature", "-")


def test_big_mesh_shows_stale_first() -> None:
    peers = [shapes.peer(f"p{i:03d}", f"{i:043d}=", f"10.42.0.{i}", hs=NOW - (600 if i % 10 == 0 else 5))
             for i in range(100)]  # fmt: skip
    rows, _ = views.mesh_rows(peers, {}, NOW, 180)
    shown, hidden = views.cap_rows(rows, 20)
    assert hidden == 80 and len(shown) == 20
    assert [r.badge for r in shown[:10]] == ["stale"] * 10 and shown[10].badge == "online"
    assert views.cap_rows(rows, 500) == (rows, 0)


@given(
    st.lists(
        st.tuples(st.sampled_from(["active", "revoked", "removed"]), st.none() | st.integers(0, 900),
                  st.integers(0, 10**9)),
        max_size=40,
    ),
    st.integers(1, 30),
)
def test_mesh_view_is_cap_rows_of_mesh_rows(specs: list[tuple[str, int | None, int]], limit: int) -> None:
    """The panel's cheap path (rows built only for the peers shown) shows exactly what the
    plain one does: the same rows, order, counts and revoked list."""
    peers = [shapes.peer(f"p{i:03d}", f"{i:043d}=", f"10.42.0.{i}", status=status,
                         hs=None if age is None else NOW - age, rx=rx)
             for i, (status, age, rx) in enumerate(specs)]  # fmt: skip
    rates = {peers[0]["public_key"]: (1.5, None)} if peers else {}
    live, revoked = views.mesh_rows(peers, rates, NOW, 180)
    shown, hidden = views.cap_rows(live, limit)
    view = views.mesh_view(peers, rates, NOW, 180, limit)
    assert (view.shown, view.hidden, view.total, view.revoked) == (shown, hidden, len(live), revoked)
    assert view.online == sum(1 for r in live if r.badge == "online")
