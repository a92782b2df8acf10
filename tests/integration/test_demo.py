"""`ykt demo` runs by itself to the end and shows what it promises."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_and_narrates_every_case() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "terminal", "demo", "--pace", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for reason in (
        "allowed",
        "no_access",
        "card_lost",
        "card_expired",
        "card_replaced",
        "outside_schedule",
        "card_not_genuine",
        "card_unknown",
        "canteen_not_allowed",
        "cancelled_by_user",
        "insufficient_balance",
        "service_not_allowed",
    ):
        assert reason in out, reason
    assert "security event: lost_card_used" in out
    assert "recorded as not used" in out
    assert "工作餐 1" in out and "退回 10.00 元" in out and "请输入密码" in out
    assert "Hash chain verified" in out  # the gate's journal
    assert "canteen-1: 9 records, chain verified" in out
    assert "shop-1: 3 records, chain verified" in out
    assert "Traceback" not in result.stderr
