"""What a restart owes the people at the terminal: the ends a crash cut off.

The journal is durable before anything is shown, so a crash can leave a decision that was
committed but never seen through: a gate opened with no passage outcome, a payment charged
whose "Paid" the cashier never saw. At start the first is journalled as an unknown outcome and
the second is shown to the cashier, so nobody charges the customer a second time by hand.
"""

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from drivers.interfaces import Screen
from models.door import unknown_passage
from models.money import Fen, format_yuan
from terminal.clock import Clock
from terminal.flows import record
from terminal.store import Store

logger = logging.getLogger(__name__)

# A payment this recent may be the one the cashier was waiting for when the terminal stopped.
RECENT_PAYMENT = timedelta(minutes=10)


def settle_unknown_passages(
    store: Store, clock: Clock, timezone: ZoneInfo, door_id: str, direction: str
) -> int:
    """Journal a passage of unknown outcome for every opening a crash cut short."""
    owed = store.awaiting_passages()
    for admission in owed:
        decision = unknown_passage(
            admission.get("holder_id"), admission.get("card"), str(admission.get("credential"))
        )
        place = record.Place(
            clock.now().astimezone(timezone),
            clock.monotonic_ns(),
            store.view_seq,
            door_id,
            direction,
        )
        commit = record.passage_commit(decision, place, str(admission["id"]))
        store.commit(commit.draft, commit.event, commit.effects)
        logger.warning(
            "the gate was open for tx %s when the terminal stopped: passage outcome unknown",
            admission["seq"],
            extra={"seq": admission["seq"]},
        )
    return len(owed)


def last_payment_notice(store: Store, now: datetime, timezone: ZoneInfo) -> Screen | None:
    """The cashier's reminder of the last payment, if it is recent enough to be the one a
    crash hid ("paid 12.00 at 12:03, do not charge again")."""
    last = store.last_payment()
    if last is None:
        return None
    at = datetime.fromisoformat(str(last["at"]))
    if not timedelta(0) <= now - at <= RECENT_PAYMENT:
        return None
    amount = format_yuan(Fen(int(last.get("amount") or 0)))
    local = at.astimezone(timezone).strftime("%H:%M")
    logger.warning(
        "last payment before the restart: %s yuan at %s, tx %s", amount, local, last["seq"]
    )
    return Screen(
        "上笔已扣款 Last payment done",
        (f"{amount} 元  {local}", "不要重复扣款 Do not charge again"),
        tone="error",
    )
