"""``ykt diag qr``: an electronic-card code judged as the terminal would judge it if shown now.

The code goes through the real flow (terminal/dryrun.py), so it is verified against the store's
keys and accepted nonces, then decided on the holder's standing, and nothing is recorded: its
nonce is not spent. Besides the decision, the technician sees whose code it claims to be, the key
it names, how long it has left and whether this terminal already accepted it; what the payload
claims is shown even for a code that failed, marked as unverified.
"""

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from drivers.camera.images import qr_texts, read_image
from drivers.qr.camera import QrDecoder
from models.cards import Credential
from models.errors import DriverError
from models.qr import QrCredential, QrFault, parse_token
from models.reasons import Reason
from terminal.diag.protocol import DiagError, ErrorCode
from terminal.diag.render import headline, pairs, value
from terminal.store import Store

MAX_TEXT = 4096  # what the diag socket takes as a code: anything longer is not one


def unjudged(text: str) -> QrFault:
    return QrFault(Reason.QR_INVALID, "the flow reached no decision")


def describe_credential(credential: QrCredential | QrFault) -> dict[str, Any]:
    """What the verification made of the code (``read`` in the dry run's report)."""
    if isinstance(credential, QrFault):
        return {
            "qr": True,
            "fault": str(credential.reason),
            "detail": credential.detail,
            "holder_id": credential.holder_id,
            "key": credential.key_id,
        }
    return {"qr": True, "holder_id": credential.holder_id, "key": credential.key_id}


def describe_code(
    text: str, credential: Credential | None, now: datetime, store: Store
) -> dict[str, Any]:
    """The code's own facts: claimed holder and key, its time left, whether it was used here."""
    verified = isinstance(credential, QrCredential)
    claims = parse_token(text)
    if isinstance(claims, QrFault):
        return {"verified": False, "well_formed": False, "problem": claims.detail}
    return {
        "verified": verified,
        "well_formed": True,
        "holder_id": claims.holder_id,
        "key": claims.key_id,
        "issued": claims.iat,
        "expires": claims.exp,
        "expires_in_s": claims.exp - int(now.timestamp()),
        "nonce_used": store.qr_nonce_seen(claims.holder_id, claims.nonce),
    }


def text_from_image(path: Path) -> str:
    """The one code in a photo or screenshot of it (the CLI reads it; the daemon gets text)."""
    try:
        image = read_image(path)
        texts = qr_texts(image)
        if not texts:
            # The terminal's own camera decoder reads codes the multi-code detector misses
            # (small modules, blur, turned): a photo it reads is one the gate would read.
            found = QrDecoder().decode(image)
            texts = [] if found is None else [found]
    except DriverError as exc:
        raise DiagError(ErrorCode.BAD_REQUEST, str(exc)) from None
    if not texts:
        raise DiagError(ErrorCode.BAD_REQUEST, f"no QR code found in {path.name}")
    if len(texts) > 1:
        raise DiagError(ErrorCode.BAD_REQUEST, f"{len(texts)} QR codes in {path.name}: crop to one")
    return texts[0]


def render(result: Mapping[str, Any]) -> RenderableType:
    code, decision = result.get("code") or {}, result.get("decision")
    if decision is None:
        return Group(headline("failed", "the flow reached no decision"))
    if decision.get("needs"):
        verdict, style = f"ASK {decision['needs']}", "bold yellow"
    else:
        verdict = "ALLOW" if decision["allowed"] else "DENY"
        style = "bold green" if decision["allowed"] else "bold red"
    registry = result.get("registry") or {}
    claimed = "" if code.get("verified") else " (claimed, not verified)"
    rows: list[tuple[str, Any]] = []
    if code.get("well_formed"):
        left = code["expires_in_s"]
        rows += [
            ("holder", f"{value(code.get('holder_id'))}{claimed}"),
            ("name", registry.get("holder")),
            ("key", f"{value(code.get('key'))}{claimed}"),
            ("expires", f"in {left} s" if left >= 0 else f"{-left} s ago"),
            ("used here", code.get("nonce_used")),
        ]
    else:
        rows.append(("code", Text(f"not a v1 code: {value(code.get('problem'))}", style="red")))
    rows += [
        ("would get", Text(f"{verdict} {decision['reason']}", style=style)),
        ("says", f"{decision['message_zh']} / {decision['message_en']}"),
    ]
    if decision.get("detail"):
        rows.append(("detail", decision["detail"]))
    if decision.get("amount") is not None:
        rows.append(("amount", f"{decision['amount']} fen, split {decision['split']}"))
    for record in result.get("would_record", []):
        line = f"would record {record['kind']} {record['decision']} {record['reason']}"
        rows.append(("journal", f"{line} ({record['credential']})"))
    why = [Text(f"  - {fact}") for fact in result.get("why", [])]
    where = ", ".join(f"{k} {v}" for k, v in result.get("where", {}).items())
    return Group(
        headline(result.get("level"), f"code dry run at {where} (view seq {result['view_seq']})"),
        pairs(rows),
        *([Text("why:"), *why] if why else []),
        *([Text(str(result["note"]), style="yellow")] if result.get("note") else []),
        Text("Nothing was recorded: the code was not spent.", style="dim"),
    )


RENDERERS = {"qr": render}
