"""``sensors.read`` on a fake /sys: the readings, their names, the text, and the whole
pipeline (dispatched when the manifest grants it, refused otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshagents.apps.device_agent.capabilities import sensors_read
from meshagents.apps.device_agent.capabilities.base import Context
from meshagents.apps.device_agent.offer import capabilities_for
from meshagents.apps.device_agent.pipeline import Pipeline
from tests.testbed.agent_rig import make_rig

pytestmark = pytest.mark.unit

CTX = Context(sandbox=False)


def fake_sys(root: Path) -> Path:
    zone = root / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("45500\n")
    (zone / "type").write_text("x86_pkg_temp\n")
    broken = root / "thermal" / "thermal_zone1"
    broken.mkdir()
    (broken / "temp").write_text("not a number\n")  # skipped, not an error
    for chip, name in (("hwmon0", "coretemp"), ("hwmon1", "nvme"), ("hwmon2", "nvme")):
        d = root / "hwmon" / chip
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")
    core = root / "hwmon" / "hwmon0"
    (core / "temp1_input").write_text("48000\n")
    (core / "temp1_label").write_text("Package id 0\n")
    (core / "temp10_input").write_text("-1500\n")
    (core / "temp2_input").write_text("47250\n")
    (root / "hwmon" / "hwmon1" / "temp1_input").write_text("39850\n")
    (root / "hwmon" / "hwmon2" / "temp1_input").write_text("41000\n")
    return root


def test_readings_by_name(tmp_path: Path) -> None:
    celsius = sensors_read.collect(fake_sys(tmp_path))
    assert celsius == {
        "x86_pkg_temp/thermal_zone0": 45.5,
        "coretemp/Package id 0": 48.0,
        "coretemp/temp2": 47.25,
        "coretemp/temp10": -1.5,
        "nvme/temp1 (hwmon1)": 39.85,
        "nvme/temp1 (hwmon2)": 41.0,
    }
    text = sensors_read.render(celsius)
    assert "coretemp/Package id 0: 48.0 °C\n" in text and "coretemp/temp10: -1.5 °C\n" in text


def test_no_sensors_is_said_plainly(tmp_path: Path) -> None:
    assert sensors_read.collect(tmp_path / "none") == {}
    assert "no temperature sensors" in sensors_read.render({})


def test_offered_at_every_level() -> None:
    for level in ("minimal", "default", "docker"):
        names = [c["name"] for c in capabilities_for(level, home="/home/op", camera_available=False)]
        assert names.count("sensors.read") == 1


def test_through_the_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHAGENTS_SYS_CLASS", str(fake_sys(tmp_path / "sys")))
    rig = make_rig(tmp_path / "dev", capabilities=[{"name": "sensors.read"}], sandbox=False)
    pipe = Pipeline(rig.config)
    try:
        out = pipe.process(rig.content("sensors.read", {}), None, CTX)
        assert out.status == "ok" and out.reason == "6 sensors", out
        assert "x86_pkg_temp/thermal_zone0: 45.5 °C" in out.output
        assert out.data == {"celsius": sensors_read.collect(tmp_path / "sys")}
        # manifest-gated like any capability: no undeclared argument, no other name
        assert pipe.process(rig.content("sensors.read", {"zone": "0"}), None, CTX).status == "rejected_args"
        assert pipe.process(rig.content("sensors", {}), None, CTX).status == "rejected_capability"
        assert pipe.audit.verify().ok
    finally:
        pipe.close()


def test_without_it_in_the_manifest(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, capabilities=[{"name": "system.info"}], sandbox=False)
    pipe = Pipeline(rig.config)
    try:
        assert pipe.process(rig.content("sensors.read", {}), None, CTX).status == "rejected_capability"
    finally:
        pipe.close()
