"""Small input bounds found while documenting parameters: refused where typed, with a code."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshagents.errors import FnError
from meshagents.functions.wg.wg_peer_add import wg_peer_add
from meshagents.inputs import check_device_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("value", [-1, 65536])
def test_keepalive_out_of_range_refused_before_anything(value: int, tmp_path: Path) -> None:
    with pytest.raises(FnError) as err:
        wg_peer_add(public_key="x", persistent_keepalive=value, config_dir=tmp_path)
    assert err.value.code == "bad_keepalive"
    assert not any(tmp_path.iterdir())  # nothing written


def test_device_name_limit_is_the_ledgers() -> None:
    assert check_device_name("a" * 63) == "a" * 63
    with pytest.raises(FnError) as err:
        check_device_name("a" * 64)  # the mesh ledger and the room alias hold 63
    assert err.value.code == "bad_device_name"
