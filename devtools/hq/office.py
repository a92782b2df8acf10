"""Card-office operations: each one a change (or a few) in the site's log, in one transaction.

The rules are the card office's (RULES.md): a holder has at most one valid card; 挂失 (lost) and
解挂 (unlost) toggle a card, but a card that has been replaced stays void forever; 补卡 (replace)
voids the old card and issues the next issue sequence; money moves only as ledger entries.
"""

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from devtools.hq.corrections import CorrectionError, check_correction
from devtools.hq.db import HqDb, now_iso
from models.errors import SyncError
from models.wallet import Purse
from sync.changes import (
    DENY_STATUSES,
    parse_card,
    parse_change,
    parse_group,
    parse_holder,
    parse_ledger,
)
from sync.envelope import Rejected, public_key_from_b64
from sync.keys import key_id

VALID = ("active", "spend_only")


class OfficeError(SyncError):
    """Raised when a card-office operation is not allowed; the message says why."""


def _checked(parser: Any, body: Mapping[str, Any], what: str) -> None:
    # The office refuses what a terminal would refuse, instead of publishing it.
    try:
        parser(body)
    except Rejected as exc:
        raise OfficeError(f"{what}: {exc.detail}") from None


class Office:
    def __init__(self, db: HqDb) -> None:
        self.db = db

    # -- people -----------------------------------------------------------------------------

    def upsert_holder(
        self, holder: Mapping[str, Any], private: Mapping[str, str | None] | None = None
    ) -> int:
        _checked(parse_holder, holder, "holder")
        with self.db.tx() as conn:
            return self.put_holder(conn, holder, private)

    def put_holder(
        self,
        conn: sqlite3.Connection,
        holder: Mapping[str, Any],
        private: Mapping[str, str | None] | None = None,
    ) -> int:
        """``upsert_holder`` inside the caller's transaction (an import writes a batch in one)."""
        _checked(parse_holder, holder, "holder")
        seq = self.db.append(
            conn, "holder.upsert", {"holder": dict(holder)}, state=("holder", holder["id"])
        )
        if private is not None:
            # Nothing searches by the ID's last four digits, so they are not kept (PIPL's
            # minimum necessary; docs/privacy.md).
            private = {**private, "id_last4": None}
            conn.execute(
                "INSERT OR REPLACE INTO people (holder_id, gender, title, building, id_hash, "
                "id_last4, phone_masked, office_phone, note) VALUES (?,?,?,?,?,?,?,?,?)",
                (holder["id"], *(private.get(k) for k in _PRIVATE)),
            )
        return seq

    def delete_holder(self, holder_id: str) -> int:
        with self.db.tx() as conn:
            seq = self.db.append(conn, "holder.delete", {"holder_id": holder_id})
            for (number,) in conn.execute(
                "SELECT number FROM cards WHERE holder_id = ?", (holder_id,)
            ).fetchall():
                self.db.forget(conn, "card", number)
            conn.execute("DELETE FROM cards WHERE holder_id = ?", (holder_id,))
            conn.execute("DELETE FROM people WHERE holder_id = ?", (holder_id,))
            self.db.forget(conn, "holder", holder_id)
            self.db.forget(conn, "face", holder_id)
            return seq

    def _holder(self, conn: sqlite3.Connection, holder_id: str) -> dict[str, Any]:
        row = conn.execute(
            "SELECT line FROM state WHERE kind = 'holder' AND key = ?", (holder_id,)
        ).fetchone()
        if row is None:
            raise OfficeError(f"no holder {holder_id}")
        holder: dict[str, Any] = json.loads(row[0])["holder"]
        return holder

    # -- cards ------------------------------------------------------------------------------

    def issue_card(
        self, holder_id: str, number: str, *, uid: str | None = None, card_class: str | None = None
    ) -> int:
        with self.db.tx() as conn:
            holder = self._holder(conn, holder_id)
            valid = conn.execute(
                "SELECT number FROM cards WHERE holder_id = ? AND status IN (?, ?)",
                (holder_id, *VALID),
            ).fetchone()
            if valid is not None:
                raise OfficeError(
                    f"holder {holder_id} already has a valid card; replace it instead"
                )
            return self._issue(conn, holder, number, uid, card_class)

    def _issue(
        self,
        conn: sqlite3.Connection,
        holder: Mapping[str, Any],
        number: str,
        uid: str | None,
        card_class: str | None,
    ) -> int:
        if conn.execute("SELECT 1 FROM cards WHERE number = ?", (number,)).fetchone():
            raise OfficeError("that card number was issued before")
        issue_seq = int(
            conn.execute(
                "SELECT coalesce(max(issue_seq), 0) + 1 FROM cards WHERE holder_id = ?",
                (holder["id"],),
            ).fetchone()[0]
        )
        card: dict[str, Any] = {
            "number": number,
            "holder_id": holder["id"],
            "issue_seq": issue_seq,
            "class": card_class or holder["class"],
            "status": "active",
            "valid_from": holder.get("valid_from"),
            "valid_until": holder.get("valid_until"),
            "status_since": now_iso(),
        }
        if uid:
            card["uid"] = uid
        card = {k: v for k, v in card.items() if v is not None}
        _checked(parse_card, card, "card")
        conn.execute(
            "INSERT INTO cards (number, holder_id, issue_seq, status, card_class) "
            "VALUES (?, ?, ?, 'active', ?)",
            (number, holder["id"], issue_seq, card["class"]),
        )
        return self.db.append(conn, "card.upsert", {"card": card}, state=("card", number))

    def set_status(self, number: str, status: str) -> int:
        """lost / unlost (back to active) / frozen / expired / spend_only / cancelled."""
        with self.db.tx() as conn:
            return self._set_status(conn, number, status)

    def _set_status(self, conn: sqlite3.Connection, number: str, status: str) -> int:
        row = conn.execute(
            "SELECT holder_id, issue_seq, status FROM cards WHERE number = ?", (number,)
        ).fetchone()
        if row is None:
            raise OfficeError("no such card")
        holder_id, issue_seq, current = row
        if current == "replaced":
            raise OfficeError("a replaced card is void forever")
        if status == "active" and current in ("lost", "frozen"):
            newer = conn.execute(
                "SELECT 1 FROM cards WHERE holder_id = ? AND issue_seq > ?", (holder_id, issue_seq)
            ).fetchone()
            if newer:
                raise OfficeError("a replacement card exists: the old one cannot be unlost")
        elif status == "active":
            raise OfficeError(f"only a lost or frozen card can be made active, not a {current} one")
        if current == "cancelled":
            raise OfficeError("a cancelled card stays cancelled")
        line = conn.execute(
            "SELECT line FROM state WHERE kind = 'card' AND key = ?", (number,)
        ).fetchone()
        card = json.loads(line[0])["card"] | {"status": status, "status_since": now_iso()}
        conn.execute("UPDATE cards SET status = ? WHERE number = ?", (status, number))
        return self.db.append(conn, "card.upsert", {"card": card}, state=("card", number))

    def replace_card(self, old: str, new: str, *, uid: str | None = None) -> int:
        with self.db.tx() as conn:
            row = conn.execute("SELECT holder_id FROM cards WHERE number = ?", (old,)).fetchone()
            if row is None:
                raise OfficeError("no such card")
            self._set_status(conn, old, "replaced")
            return self._issue(conn, self._holder(conn, row[0]), new, uid, None)

    # -- money ------------------------------------------------------------------------------

    def post(
        self,
        conn: sqlite3.Connection,
        account: str,
        purse: str,
        delta: int,
        reason: str,
        *,
        origin: Mapping[str, Any] | None = None,
        entry_id: str | None = None,
    ) -> int:
        """One ledger entry and its change, inside the caller's transaction.

        ``origin`` names the terminal record the money comes from; a correction is credited
        only as far as the payment it refers to allows (``devtools.hq.corrections``).
        """
        if purse not in set(Purse):
            raise OfficeError(f"unknown purse {purse}")
        if origin is not None:
            self._check_origin(conn, account, purse, reason, origin)
        row = conn.execute(
            "SELECT balance FROM purses WHERE account = ? AND purse = ?", (account, purse)
        ).fetchone()
        after = (int(row[0]) if row else 0) + delta
        seq_hint = int(conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM changes").fetchone()[0])
        entry: dict[str, Any] = {
            "id": entry_id or f"L{seq_hint}",
            "account": account,
            "purse": purse,
            "delta": delta,
            "balance_after": after,
            "reason": reason,
            "at": now_iso(),
        }
        if origin is not None:
            entry["origin"] = dict(origin)
        _checked(parse_ledger, entry, "ledger")
        conn.execute(
            "INSERT INTO purses (account, purse, balance) VALUES (?, ?, ?) "
            "ON CONFLICT (account, purse) DO UPDATE SET balance = excluded.balance",
            (account, purse, after),
        )
        seq = self.db.append(conn, "ledger", {"entry": entry})
        conn.execute(
            "INSERT INTO ledger (id, account, purse, delta, balance_after, reason, origin_tid, "
            "origin_tx_seq, origin_tx_id, at, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                entry["id"], account, purse, delta, after, reason,
                origin and origin["tid"], origin and origin["tx_seq"], origin and origin["tx_id"],
                entry["at"], seq,
            ),
        )  # fmt: skip
        return seq

    def _check_origin(
        self,
        conn: sqlite3.Connection,
        account: str,
        purse: str,
        reason: str,
        origin: Mapping[str, Any],
    ) -> None:
        if reason == "correction":
            try:
                check_correction(conn, account, origin)
            except CorrectionError as exc:
                raise OfficeError(str(exc)) from None
        posted = conn.execute(
            "SELECT 1 FROM ledger WHERE origin_tid = ? AND origin_tx_id = ? AND purse = ?",
            (origin["tid"], origin["tx_id"], purse),
        ).fetchone()
        if posted is not None:
            # A record id seen again at another seq: refused here, since the ledger's unique
            # index would otherwise fail the whole upload at every resend.
            raise OfficeError(f"record {origin['tx_id']} is already posted to {purse}")

    def move_money(self, account: str, purse: str, delta: int, reason: str) -> int:
        if reason == "topup" and delta <= 0:
            raise OfficeError("a top-up is a positive amount of fen")
        with self.db.tx() as conn:
            return self.post(conn, account, purse, delta, reason)

    def expire_subsidy(self, account: str, purse: str) -> int:
        with self.db.tx() as conn:
            row = conn.execute(
                "SELECT balance FROM purses WHERE account = ? AND purse = ?", (account, purse)
            ).fetchone()
            balance = int(row[0]) if row else 0
            if balance <= 0:
                raise OfficeError("nothing to expire")
            return self.post(conn, account, purse, -balance, "subsidy_expire")

    # -- groups, calendars, rules, faces, keys, terminals -----------------------------------

    def upsert_group(self, group: Mapping[str, Any]) -> int:
        _checked(parse_group, group, "group")
        with self.db.tx() as conn:
            return self.db.append(
                conn, "group.upsert", {"group": dict(group)}, state=("group", group["id"])
            )

    def set_holidays(self, calendar: str, holidays: Sequence[str], workdays: Sequence[str]) -> int:
        body = {"calendar": calendar, "holidays": list(holidays), "workdays": list(workdays)}
        with self.db.tx() as conn:
            return self.db.append(conn, "holiday.upsert", body, state=("holiday", calendar))

    def upsert_rule(self, rule: Mapping[str, Any]) -> int:
        try:
            parse_change({"seq": 1, "kind": "rule.upsert", "rule": dict(rule)})
        except Rejected as exc:
            raise OfficeError(f"rule: {exc.detail}") from None
        with self.db.tx() as conn:
            return self.db.append(
                conn, "rule.upsert", {"rule": dict(rule)}, state=("rule", rule["id"])
            )

    def set_face(self, holder_id: str, body: Mapping[str, Any]) -> int:
        with self.db.tx() as conn:
            return self.put_face(conn, holder_id, body)

    def put_face(self, conn: sqlite3.Connection, holder_id: str, body: Mapping[str, Any]) -> int:
        return self.db.append(
            conn, "face.upsert", {"holder_id": holder_id, **body}, state=("face", holder_id)
        )

    def enroll(self, tid: str, pub: str) -> str:
        """Register a terminal's public key (shown by its diag CLI); returns its key id."""
        try:
            kid = key_id(public_key_from_b64(pub), "t-")
        except Rejected as exc:
            raise OfficeError(f"public key: {exc.detail}") from None
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO terminals (tid, pub, kid) VALUES (?, ?, ?) ON CONFLICT (tid) "
                "DO UPDATE SET pub = excluded.pub, kid = excluded.kid",
                (tid, pub, kid),
            )
        return kid


_PRIVATE = (
    "gender",
    "title",
    "building",
    "id_hash",
    "id_last4",
    "phone_masked",
    "office_phone",
    "note",
)


def denies_in(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``deny`` body for a change that voids a card, or ``None``."""
    if entry.get("kind") != "card.upsert":
        return None
    card = entry["card"]
    if card.get("status") not in DENY_STATUSES:
        return None
    return {
        "seq": entry["seq"],
        "cards": [
            {"number": card["number"], "status": card["status"], "since": card.get("status_since")}
        ],
    }
