"""Codes shown to the terminal, turned into credentials for the door and POS flows.

A code is verified when the flow takes it, like a card is read when it is tapped: against the
holder's keys and the nonces already accepted, as the store has them then, at the flow's "now"
(models.qr). The verified credential (or the fault) is then decided as any tap is, and an
accepted code's nonce is spent by the commit that journals it.
"""

import math
from datetime import datetime

from models.cards import Credential
from models.decision import Decision
from models.qr import DEFAULT_SKEW_S, QrCredential, QrFault, check_token
from terminal.store import QrNonceSpent, Store


class QrCheck:
    """Verifies codes against ``store``, with ``skew`` seconds of clock difference allowed."""

    def __init__(self, store: Store, skew: int = DEFAULT_SKEW_S) -> None:
        self.store = store
        self.skew = skew

    def credential(self, text: str, at: datetime) -> QrCredential | QrFault:
        # Whole seconds, as the token's times are: a code is good through the second it ends.
        now = math.floor(at.timestamp())
        return check_token(text, self.store.qr_keys, now, self.store.qr_nonce_seen, skew=self.skew)


def held_key(text: str) -> str:
    """A code held in view is one presentation until it is taken away, whatever it says."""
    return "qr:" + text


def spent(
    credential: Credential | None, decision: Decision, at: datetime
) -> tuple[QrNonceSpent, ...]:
    """What the commit of ``decision`` must keep so the code cannot be shown again: its nonce,
    when the code was accepted (a refused code may be shown again, and is refused again)."""
    if not decision.allowed or not isinstance(credential, QrCredential):
        return ()
    return (
        QrNonceSpent(
            credential.holder_id,
            credential.nonce,
            credential.keep_until,
            math.floor(at.timestamp()),
        ),
    )
