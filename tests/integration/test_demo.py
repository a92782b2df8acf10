"""`ykt demo` runs by itself to the end and shows what it promises."""

import re
import subprocess
import sys

import pytest

from devtools.demo.faces import shared_data
from devtools.demo.sync import INSTALL_HINT, find_mosquitto

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
    _assert_faces_act(out)
    _assert_qr_act(out)
    _assert_sync_act(out)


def _assert_qr_act(out: str) -> None:
    text = " ".join(out.split())
    act = text[text.index("Electronic card — a phone's QR code") :]
    assert "DENY 陈静 (red), credential card reason card_lost" in act
    assert "ALLOW 陈静 (red), credential qr reason allowed" in act
    for reason in ("qr_replayed", "qr_expired", "qr_unknown_key"):
        assert f"credential qr reason {reason}" in act, reason
    assert "PAID 张伟 (gold), credential qr" in act
    assert "electronic-card journals: chain verified" in act


def _assert_faces_act(out: str) -> None:
    text = " ".join(out.split())
    if shared_data() is None:
        assert "act skipped" in text
        return
    act = text[text.index("Enrolment from the registration photos") :]
    card_face = re.search(
        r"ALLOW 张伟 \(gold\), card \S+ reason allowed.*?credential card\+face", act
    )
    assert card_face is not None, act
    lent = act[act.index("A lent card") :]
    assert "DENY 李娜 (red)" in lent and "reason face_mismatch" in lent
    assert "security event: card_lending" in lent and "1 still kept as evidence" in lent
    face_only = act[act.index("walks up without her card") :]
    assert "ALLOW 李娜 (red), by face alone" in face_only and "credential face," in face_only
    assert "not counted again" in face_only
    assert "face_unknown" in act and "nothing is journalled" in act
    assert "Faces journal: 5 records, 1 evidence still, chain verified" in act


def _assert_sync_act(out: str) -> None:
    # Rich wraps long lines at the console width: compare with the wrapping undone.
    text = " ".join(out.split())
    if find_mosquitto() is None:
        assert INSTALL_HINT in text
        return
    assert re.search(r"fresh terminal: 3 holders arrived by snapshot in \d+ ms", text), text
    lost = re.search(r"denied at the gate (\d+\.\d+) s after HQ recorded the loss", text)
    assert lost is not None, text
    assert float(lost.group(1)) < 1.0
    act = text[lost.end() :]
    assert "card_lost" in act and "security event: lost_card_used" in act
    assert "the terminal is offline" in act
    offline = act[act.index("the terminal is offline") : act.index("The broker is back")]
    assert offline.count("ALLOW") == 2 and offline.count("DENY") == 1
    queued = re.search(r"outbox: (\d+) journal records and 1 security event waiting", offline)
    assert queued is not None and int(queued.group(1)) == 5
    assert "backlog acknowledged by HQ" in act
    assert "HQ received 8 transaction records from demo-gate-01 (#1–#8, 8 distinct)" in act
    assert "the terminal's journal holds 8 records and 2 security events" in act
    assert "nothing lost, nothing doubled" in act
