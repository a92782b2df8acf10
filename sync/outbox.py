"""Draining the outbox to HQ: batches of journal records to ``tx``, events to ``event``.

Only HQ's ``txack`` moves the outbox (a PUBACK only says the broker has it, and brokers drop
queued messages). A window of batches is in flight at a time; if no ack arrives within
``resend_after`` everything unacknowledged is sent again — HQ ignores records it already has,
so resending is always safe and never doubles anything.
"""

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from models.timefmt import rfc3339
from sync.changes import bad, integer
from sync.envelope import Signer
from sync.port import SyncPort
from sync.settings import SyncSettings
from sync.topics import Topics

logger = logging.getLogger(__name__)

Publish = Callable[[str, bytes, bool], None]

# A connected HQ acknowledges a batch within this long. Batches sent before HQ showed it is there
# (a head from it) and unacknowledged this long after were most likely published while HQ was not
# subscribed (a broker restarted without persistence drops them): they go again at once instead
# of after ``resend_after``.
HQ_ANSWERS_WITHIN = 2.0


class OutboxDrain:
    def __init__(
        self, port: SyncPort, signer: Signer, topics: Topics, settings: SyncSettings
    ) -> None:
        self._port = port
        self._signer = signer
        self._topics = topics
        self._settings = settings
        self.acked = port.marks().tx_acked
        self._sent_through = self.acked
        self._inflight: deque[tuple[int, float]] = deque()  # (last seq of a batch, sent at)
        self.resends = 0
        self._hq_seen: float | None = None  # when a head last showed HQ connected, if unanswered

    def reset(self) -> None:
        """Send everything unacknowledged again from the start (reconnect, or no ack in time)."""
        self._sent_through = self.acked
        self._inflight.clear()

    def hq_seen(self, mono: float) -> None:
        """HQ has just published (a head): it is connected and subscribed now."""
        self._hq_seen = mono

    def on_txack(self, body: Mapping[str, Any]) -> int:
        """Apply ``{"through": K, "epoch"?: E, "events"?: [ids]}``; returns records dropped from
        the outbox. An ack for another journal epoch (one this terminal had before its journal
        started again) says nothing about this journal's records and moves nothing."""
        through = integer(body, "through", minimum=0)
        epoch = body.get("epoch")
        if epoch is not None and not isinstance(epoch, str):
            raise bad("txack.epoch: the journal epoch the ack is for")
        events = body.get("events", [])
        if not isinstance(events, list) or not all(
            isinstance(e, int) and not isinstance(e, bool) for e in events
        ):
            raise bad("txack.events: a list of event ids")
        if events:
            self._port.ack_events(events)
        self._ack_salvaged(body.get("salvaged"))
        own = self._port.marks().journal_epoch
        if epoch is not None and epoch != own:
            logger.warning("txack for journal epoch %r ignored: this journal is %r", epoch, own)
            return 0
        if through <= self.acked:
            return 0
        removed = self._port.ack_tx(through)
        # The port keeps what was never sent: acknowledged is only what it let go.
        through = self._port.marks().tx_acked
        self.acked = max(self.acked, through)
        self._sent_through = max(self._sent_through, through)
        while self._inflight and self._inflight[0][0] <= through:
            self._inflight.popleft()
        self._hq_seen = None  # HQ is consuming this stream: the window is not lost
        return removed

    def _ack_salvaged(self, salvaged: object) -> None:
        if salvaged is None:
            return
        if (
            not isinstance(salvaged, dict)
            or not isinstance(salvaged.get("epoch"), str)
            or not isinstance(salvaged.get("seqs"), list)
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in salvaged["seqs"])
        ):
            raise bad("txack.salvaged: {epoch, seqs} of the salvaged records HQ holds")
        self._port.drop_salvaged(salvaged["epoch"], salvaged["seqs"])

    def tick(self, mono: float, now: datetime, publish: Publish) -> int:
        """Send what the window allows; returns the number of records sent."""
        settings = self._settings
        if self._inflight and mono - self._inflight[0][1] > settings.resend_after:
            self.resends += 1
            logger.info(
                "no txack for tx after %d within %.0f s: resending",
                self.acked,
                settings.resend_after,
            )
            self.reset()
        elif self._lost_before_hq_came(mono):
            self.resends += 1
            logger.info(
                "HQ is back but has not acknowledged tx after %d sent before it was: resending",
                self.acked,
            )
            self.reset()
        sent = 0
        while len(self._inflight) < settings.tx_window:
            records = self._port.tx_records(self._sent_through, settings.tx_batch)
            if not records:
                break
            first, last = int(records[0]["seq"]), int(records[-1]["seq"])
            payload = self._signer.seal(
                "tx", self._topics.site, {"records": records}, tid=self._topics.tid
            )
            publish(self._topics.terminal_topic("tx"), payload, False)
            self._port.mark_tx_sent(first, last, rfc3339(now))
            self._inflight.append((last, mono))
            self._sent_through = last
            sent += len(records)
        self._send_events(now, publish)
        return sent + self._send_salvaged(now, publish)

    def _lost_before_hq_came(self, mono: float) -> bool:
        seen = self._hq_seen
        if seen is None or not self._inflight or self._inflight[0][1] > seen:
            return False
        if mono - seen < min(HQ_ANSWERS_WITHIN, self._settings.resend_after):
            return False
        self._hq_seen = None  # once per sign of HQ: a dead HQ is left to resend_after
        return True

    def _send_salvaged(self, now: datetime, publish: Publish) -> int:
        """Records of an earlier journal read back from a quarantined file: sent apart from the
        live journal's window, marked as salvaged, and again after ``resend_after`` until HQ
        names them in a txack."""
        before = rfc3339(now - timedelta(seconds=self._settings.resend_after))
        due = self._port.salvaged_due(self._settings.tx_batch, before)
        if not due:
            return 0
        payload = self._signer.seal(
            "tx", self._topics.site, {"records": due, "salvaged": True}, tid=self._topics.tid
        )
        publish(self._topics.terminal_topic("tx"), payload, False)
        self._port.mark_salvaged_sent(due, rfc3339(now))
        return len(due)

    def _send_events(self, now: datetime, publish: Publish) -> None:
        before = rfc3339(now - timedelta(seconds=self._settings.resend_after))
        due = self._port.events_due(50, before)
        if not due:
            return
        for event in due:
            payload = self._signer.seal(
                "event", self._topics.site, event.body, tid=self._topics.tid
            )
            publish(self._topics.terminal_topic("event"), payload, False)
        ids: Sequence[int] = [event.id for event in due]
        self._port.mark_events_sent(ids, rfc3339(now))

    @property
    def in_flight(self) -> int:
        return len(self._inflight)
