"""``ykt hq qr``: keygen publishes the device key in holder.upsert, token makes codes the
terminal's verification takes, revoke publishes the holder without the key."""

import base64
import contextlib
import io
import json
from pathlib import Path

import pytest

from devtools.hq.cli import main as hq_main
from devtools.hq.db import HqDb
from devtools.hq.office import Office
from models.qr import QrCredential, QrFault, check_token
from models.reasons import Reason
from sync.changes import parse_change
from tests.sync.messages import SITE, holder


def hq(site: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = hq_main(["--dir", str(site), *argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "hq"
    HqDb.create(path, SITE, "ykt/v1", "127.0.0.1:1883").close()
    Office(HqDb(path)).upsert_holder(holder("H1"))
    return path


def published_keys(site: Path) -> dict[str, str]:
    db = HqDb(site)
    try:
        (entry,) = db.conn.execute(
            "SELECT entry FROM changes WHERE kind = 'holder.upsert' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    finally:
        db.close()
    parsed = parse_change(json.loads(entry))  # what a terminal would make of it
    return dict(parsed.holder.qr_keys)  # type: ignore[union-attr]


def test_keygen_token_and_revoke(site: Path) -> None:
    code, out, _ = hq(site, "qr", "keygen", "--holder", "H1", "--json")
    assert code == 0
    made = json.loads(out)
    assert set(made) == {"holder", "k", "pub", "priv"} and made["holder"] == "H1"
    assert published_keys(site) == {made["k"]: made["pub"]}
    assert (site / "phone" / f"H1.{made['k']}.key").stat().st_mode & 0o777 == 0o600

    code, out, _ = hq(site, "qr", "token", "--holder", "H1", "--key", made["k"], "--json")
    token = out.strip()
    assert code == 0 and "\n" not in token
    keys = {"H1": published_keys(site)}
    from_hq = check_token(token, lambda h: keys.get(h, {}), int(token_iat(token)), _never)
    assert isinstance(from_hq, QrCredential) and from_hq.exp - from_hq.iat == 30
    # The phone's key given on the command line instead of its file: the same key.
    _, again, _ = hq(site, "qr", "token", "--holder", "H1", "--key", made["k"], "--priv",
                     made["priv"], "--png", str(site / "code.png"))  # fmt: skip
    assert again.startswith("YKT1.") and (site / "code.png").stat().st_size > 0

    assert hq(site, "qr", "revoke", "--holder", "H1", "--key", made["k"])[0] == 0
    assert published_keys(site) == {}
    revoked = check_token(token, lambda h: {}, int(token_iat(token)), _never)
    assert isinstance(revoked, QrFault) and revoked.reason is Reason.QR_UNKNOWN_KEY
    code, _, err = hq(site, "qr", "revoke", "--holder", "H1", "--key", made["k"])
    assert code == 1 and "no QR key" in err
    code, _, err = hq(site, "qr", "token", "--holder", "H1", "--key", made["k"], "--lifetime", "99")
    assert code == 1


def test_keygen_for_an_unknown_holder_is_refused(site: Path) -> None:
    code, _, err = hq(site, "qr", "keygen", "--holder", "H9")
    assert code == 1 and "no holder H9" in err


def token_iat(token: str) -> int:
    payload = token.split(".")[1]
    return int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["iat"])


def _never(holder_id: str, nonce: str) -> bool:
    return False
