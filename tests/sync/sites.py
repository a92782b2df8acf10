"""An HQ (reference tool) and a terminal (store + sync service) around one real broker."""

from dataclasses import replace
from pathlib import Path
from typing import Any

from devtools.hq.db import HqDb
from devtools.hq.keyadmin import make_root
from devtools.hq.office import Office
from devtools.hq.server import HqServer, ServeOptions
from models.journal import TransactionDraft
from models.reasons import Reason
from sync.envelope import public_key_b64
from sync.service import SyncService
from sync.settings import SyncSettings
from terminal.store import Store
from terminal.store.sync_port import StoreSyncPort
from tests.sync.broker import Broker, wait_for
from tests.sync.messages import SITE, TID, card, card_number, group, holder

FAST = {"resync_after": 1.0, "resend_after": 2.0, "reconnect_max": 1.0, "tx_batch": 200}


def terminal_settings(root: Path, hq_root: Path, port: int, **extra: Any) -> SyncSettings:
    db = HqDb(hq_root)
    signer = db.signer()
    root_key = db.meta("root_pub")
    db.close()
    values: dict[str, Any] = (
        {
            "tid": TID,
            "site": SITE,
            "key_file": root / "terminal-sync.key",
            "hq_keys": {signer.kid: public_key_b64(signer.public_key)},
            "hq_root_key": root_key,
            "port": port,
        }
        | FAST
        | extra
    )
    return SyncSettings(**values)


class Terminal:
    def __init__(self, root: Path, settings: SyncSettings) -> None:
        self.root = root
        self.settings = settings
        self.store = Store.open(root / "terminal.db")
        self.port = StoreSyncPort(self.store, settings.tid)
        self.service = SyncService(settings, self.port)
        self.running = False
        self.closed = False

    def start(self) -> "Terminal":
        self.service.start()
        self.running = True
        return self

    def stop(self) -> None:
        if self.running:
            self.service.stop()
            self.running = False
        if not self.closed:
            self.store.close()
            self.closed = True

    def status(self, n: int) -> str | None:
        with self.store.read() as conn:
            row = conn.execute("SELECT status FROM cards WHERE number = ?", (card_number(n),))
            found = row.fetchone()
        return None if found is None else str(found[0])

    def commit_payments(self, count: int, holder_id: str = "H1", amount: int = 100) -> None:
        for i in range(count):
            self.store.commit(
                TransactionDraft(
                    "shop", f"2026-11-23T12:00:{i % 60:02d}+08:00", i, "card", "allow",
                    Reason.ALLOWED, self.store.view_seq, card=card_number(1),
                    holder_id=holder_id, amount=amount, split=(("cash", amount),),
                )
            )  # fmt: skip


class Site:
    """The HQ database (for the card office), its server thread, and one terminal."""

    def __init__(
        self,
        tmp_path: Path,
        broker: Broker,
        *,
        holders: int = 5,
        root_key: bool = False,
        **options: Any,
    ) -> None:
        self.tmp = tmp_path
        self.broker = broker
        self.hq_root = tmp_path / "hq"
        HqDb.create(self.hq_root, SITE, "ykt/v1", f"127.0.0.1:{broker.port}").close()
        self.db = HqDb(self.hq_root)
        self.root_key = tmp_path / "hq-root.key"
        if root_key:
            make_root(self.db, self.root_key)
        self.office = Office(self.db)
        self.office.upsert_group(group())
        for i in range(1, holders + 1):
            self.office.upsert_holder(holder(f"H{i}"))
            self.office.issue_card(f"H{i}", card_number(i))
        self.office.move_money("H1", "cash", 100_000, "topup")
        self.serve_options = ServeOptions(port=broker.port, **options)
        self.server: HqServer | None = None
        root = tmp_path / "terminal"
        root.mkdir()
        self.terminal = Terminal(root, terminal_settings(root, self.hq_root, broker.port))
        self.office.enroll(TID, self.terminal.service.public_key)

    def start_hq(self) -> HqServer:
        self.server = HqServer(HqDb(self.hq_root), self.serve_options)
        self.server.start()
        return self.server

    def stop_hq(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server.db.close()
            self.server = None

    def published(self, timeout: float = 10.0) -> bool:
        """HQ has sent everything in its log (so a terminal starting now must catch up)."""
        return wait_for(
            lambda: int(self.db.meta("published_seq") or 0) == self.db.head_seq(), timeout
        )

    def synced(self, timeout: float = 10.0) -> bool:
        return wait_for(
            lambda: self.terminal.port.marks().change_seq == self.db.head_seq(), timeout
        )

    def hq_tx(self, epoch: str | None = None) -> list[tuple[int, int]]:
        """(seq, how many times) for every tx HQ holds from the terminal, in the terminal's
        current journal epoch unless told which."""
        epoch = self.terminal.port.marks().journal_epoch if epoch is None else epoch
        rows = self.db.conn.execute(
            "SELECT seq, count(*) FROM tx WHERE epoch = ? GROUP BY tid, seq ORDER BY seq",
            (epoch,),
        )
        return [(int(s), int(c)) for s, c in rows]

    def close(self) -> None:
        self.terminal.stop()
        self.stop_hq()
        self.db.close()


def restarted(terminal: Terminal, **changes: Any) -> Terminal:
    """The same terminal (database, key) started again, as after a power cut."""
    return Terminal(terminal.root, replace(terminal.settings, **changes))


__all__ = ["Site", "Terminal", "card", "restarted"]
