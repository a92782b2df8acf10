"""Shared plumbing of the sync benchmarks: a loopback mosquitto, a generated HQ site, a terminal.

Data is generated deterministically (seeded) straight into the reference HQ's database in one
transaction per table, which is what makes 100,000 holders with face templates take seconds
rather than the hours one card-office operation at a time would.
"""

import base64
import random
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from common import progress
from paho.mqtt.enums import CallbackAPIVersion

from devtools.hq.db import HqDb
from devtools.hq.office import Office
from devtools.mosquitto import Mosquitto
from models.canonical import canonical_json
from sync.envelope import public_key_b64
from sync.service import SyncService
from sync.settings import SyncSettings
from terminal.store import Store
from terminal.store.sync_port import StoreSyncPort

SITE = "bench-site"
TID = "bench-t1"
TEMPLATE_DIM = 128
REPO = Path(__file__).resolve().parents[1]


def start_broker(directory: Path) -> Mosquitto:
    """A loopback broker that queues deep enough for a whole backlog in flight."""
    broker = Mosquitto(directory, extra="max_queued_messages 100000\n")
    broker.start()
    return broker


def template(rng: random.Random) -> str:
    values = [rng.gauss(0.0, 0.09) for _ in range(TEMPLATE_DIM)]
    return base64.b64encode(struct.pack(f"<{TEMPLATE_DIM}f", *values)).decode()


def holder_body(n: int) -> dict[str, Any]:
    return {
        "id": f"H{n:08d}",
        "name": f"持卡人{n}",
        "unit": "市政府",
        "dept": f"部门{n % 40}",
        "class": ("gold", "red", "red", "blue", "green")[n % 5],
        "status": "active",
        "valid_until": "2028-12-31",
        "groups": [f"g{n % 50:03d}"],
        "canteens": ["canteen-1"],
        "services": ["meal", "shop"],
        "require_face": n % 3 == 0,
        "qr_keys": [],
    }


def card_number(n: int) -> str:
    return f"3601{n:016d}"


def build_site(root: Path, holders: int, *, seed: int = 20261122, faces: bool = True) -> HqDb:
    """An HQ site with ``holders`` holders, one card each, a template each, and a cash purse."""
    started = time.monotonic()
    db = HqDb.create(root, SITE, "ykt/v1", "127.0.0.1:1883")
    rng = random.Random(seed)
    with db.tx() as conn:
        for g in range(50):
            group = {
                "id": f"g{g:03d}",
                "doors": [f"door-{g % 10:02d}"],
                "windows": [{"days": [1, 2, 3, 4, 5], "from": "07:00", "to": "20:00"}],
                "calendar": "cn",
            }
            db.append(conn, "group.upsert", {"group": group}, state=("group", group["id"]))
        for n in range(holders):
            body = holder_body(n)
            db.append(conn, "holder.upsert", {"holder": body}, state=("holder", body["id"]))
            card = {
                "number": card_number(n),
                "holder_id": body["id"],
                "issue_seq": 1,
                "class": body["class"],
                "status": "active",
                "valid_until": "2028-12-31",
            }
            db.append(conn, "card.upsert", {"card": card}, state=("card", card["number"]))
            conn.execute(
                "INSERT INTO cards (number, holder_id, issue_seq, status, card_class) "
                "VALUES (?, ?, 1, 'active', ?)",
                (card["number"], body["id"], card["class"]),
            )
            if faces:
                face = {
                    "holder_id": body["id"],
                    "model": "sface-2021dec",
                    "template": template(rng),
                }
                db.append(conn, "face.upsert", face, state=("face", body["id"]))
            conn.execute(
                "INSERT INTO purses (account, purse, balance) VALUES (?, 'cash', ?)",
                (body["id"], rng.randrange(0, 100_000)),
            )
            if n and n % 20_000 == 0:
                progress(f"  generated {n:,} holders")
        db.set_meta(conn, "published_seq", str(db.head_seq()))
    progress(f"site of {holders:,} holders generated in {time.monotonic() - started:.1f} s")
    return db


def start_hq(root: Path, port: int) -> subprocess.Popen[bytes]:
    """``ykt hq serve`` for the site in ``root``, as a separate process; returns once it has
    published its head (so its start-up is not part of any measurement)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.hq",
            "--dir",
            str(root),
            "serve",
            "--broker",
            f"127.0.0.1:{port}",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen = threading.Event()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-head")
    client.on_message = lambda c, u, m: seen.set()
    client.connect("127.0.0.1", port)
    client.subscribe(f"ykt/v1/{SITE}/head", qos=1)
    client.loop_start()
    if not seen.wait(30):
        process.kill()
        raise RuntimeError("HQ did not publish its head")
    client.loop_stop()
    client.disconnect()
    return process


def terminal_settings(root: Path, db: HqDb, port: int, **extra: Any) -> SyncSettings:
    signer = db.signer()
    values: dict[str, Any] = {
        "tid": TID,
        "site": SITE,
        "key_file": root / "sync.key",
        "hq_keys": {signer.kid: public_key_b64(signer.public_key)},
        "port": port,
        "resync_after": 2.0,
        "resend_after": 10.0,
        "reconnect_max": 2.0,
    } | extra
    return SyncSettings(**values)


class BenchTerminal:
    """A terminal's store and sync service, enrolled at the HQ of ``db``."""

    def __init__(self, root: Path, settings: SyncSettings, db: HqDb) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.store = Store.open(root / "terminal.db")
        self.port = StoreSyncPort(self.store, settings.tid)
        self.service = SyncService(settings, self.port)
        Office(db).enroll(settings.tid, self.service.public_key)

    def close(self) -> None:
        self.service.stop()
        self.store.close()


def line(value: dict[str, Any]) -> bytes:
    return canonical_json(value)
