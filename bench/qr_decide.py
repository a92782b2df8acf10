"""An electronic-card presentation from camera frame to durable record, against a card tap.

    .venv/bin/python bench/qr_decide.py            # 100,000 holders, 300 presentations
    .venv/bin/python bench/qr_decide.py --quick    # 10,000 holders, 100 presentations

On a copy of the bench site (bench/sitegen.py) whose holders got phone keys: for each
presentation a fresh signed code (devtools' token maker, a new nonce each) is rendered into a
640 x 480 camera frame (bench/qr_decode.py's frames: 4 px modules, sensor noise, JPEG) before the
clock starts. Measured, interleaved in rounds so a noisy neighbour hits all alike:

1. *QR presentation*: the camera decoder (drivers.qr.camera.QrDecoder) on the frame, then the
   door flow's step for the code (verification, replay check, holder standing, ``decide()``) and
   the fsync'd commit of the record with its nonce: what the tap loop does for a code.
2. *verify alone*: ``models.qr.check_token`` on the same texts (no store).
3. *card tap* (the baseline): the same door flow's step for a card and the same commit.

Target (the QR credential's): a presentation decided in ≤ 60 ms p99.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, percentiles, progress, write_result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from qr_decode import code_frame
from sitegen import BENCH_DOOR, Scale, build, card_number

from devtools.hq.qr import make_token
from drivers.interfaces import CardPresented
from drivers.qr.camera import QrDecoder
from drivers.qr.interface import QrPresented
from models.cards import Genuineness, PresentedCard
from models.qr import check_token
from sync.envelope import public_key_b64
from terminal.flows.door import DoorFlow, DoorSettings
from terminal.flows.steps import Commit, Moment
from terminal.store import Store

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=TZ)  # a Monday morning, as bench/decide_commit.py
PHONES = 500  # holders with a phone key; each presentation is one of them


def _phones(path: Path) -> dict[str, tuple[str, Ed25519PrivateKey]]:
    keys = {}
    with Store.open(path).write() as conn:
        for n in range(PHONES):
            holder = f"H{n:08d}"
            key = Ed25519PrivateKey.generate()
            k = f"q-{n:016x}"
            entry = [{"k": k, "pub": public_key_b64(key.public_key())}]
            conn.execute("UPDATE holders SET qr_keys = ? WHERE id = ?", (json.dumps(entry), holder))
            keys[holder] = (k, key)
    return keys


def _flow(store: Store) -> DoorFlow:
    return DoorFlow(settings=DoorSettings(BENCH_DOOR, "in", 5.0), store=store)


def _commit(store: Store, commands: list[object]) -> str:
    [commit] = [c for c in commands if isinstance(c, Commit)]
    store.commit(commit.draft, commit.event, commit.effects)
    return str(commit.draft.reason)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small site, < 1 minute")
    args = parser.parse_args()
    scale = Scale(10_000, 100_000) if args.quick else Scale(100_000, 1_000_000)
    count = 100 if args.quick else 300
    progress(f"site: {scale.holders:,} holders at {scale.path}")
    source, _ = build(scale)
    work = Path(tempfile.mkdtemp(prefix="ykt-bench-qr-"))
    try:
        path = work / "site.db"
        shutil.copyfile(source, path)  # the phones' keys and the nonces stay out of the cache
        phones = _phones(path)
        holders = sorted(phones)
        epoch = int(NOW.timestamp())
        texts, frames = [], []
        progress(f"rendering {count} codes into camera frames")
        for i in range(count):
            holder = holders[i % len(holders)]
            k, key = phones[holder]
            text = make_token(key, holder, k, now=epoch - 5)
            frame = code_frame(text, 4.0, seed=i)
            assert frame is not None
            texts.append(text)
            frames.append(frame)
        store = Store.open(path)
        decoder = QrDecoder()
        published = {h: {k: public_key_b64(key.public_key())} for h, (k, key) in phones.items()}
        qr_ns, verify_ns, card_ns = [], [], []
        reasons: dict[str, int] = {}
        cards = [PresentedCard(card_number(n), Genuineness.GENUINE, 1) for n in range(count)]
        for warm in range(5):  # first calls allocate
            decoder.decode(frames[warm])
        for i in range(count):
            moment = Moment(NOW, time.monotonic())
            started = time.perf_counter_ns()
            text = decoder.decode(frames[i])
            assert text == texts[i], "the decoder did not read a code it must read"
            reason = _commit(store, _flow(store).step(QrPresented(text, "camera"), moment))
            qr_ns.append(time.perf_counter_ns() - started)
            reasons[reason] = reasons.get(reason, 0) + 1

            started = time.perf_counter_ns()
            check_token(texts[i], lambda h: published.get(h, {}), epoch, lambda _h, _n: False)
            verify_ns.append(time.perf_counter_ns() - started)

            started = time.perf_counter_ns()
            _commit(store, _flow(store).step(CardPresented(cards[i]), moment))
            card_ns.append(time.perf_counter_ns() - started)
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    qr, verify, card = percentiles(qr_ns), percentiles(verify_ns), percentiles(card_ns)
    result = {
        "machine": machine(),
        "holders": scale.holders,
        "presentations": count,
        "qr_presentation": qr,
        "verify_alone": verify,
        "card_tap": card,
        "qr_reasons": reasons,
        "ratio_qr_over_card_p50": round(qr["p50_ms"] / card["p50_ms"], 1),
        "ratio_qr_over_card_p99": round(qr["p99_ms"] / card["p99_ms"], 1),
        "target_p99_ms": 60,
    }
    print(f"{count} presentations on {scale.holders:,} holders, ms p50 / p99:")
    for name in ("qr_presentation", "verify_alone", "card_tap"):
        print(f"  {name:16s} {result[name]['p50_ms']:7.2f} / {result[name]['p99_ms']:7.2f}")
    print(f"  QR ÷ card: p50 {result['ratio_qr_over_card_p50']}x, "
          f"p99 {result['ratio_qr_over_card_p99']}x; reasons {reasons}")  # fmt: skip
    print(f"written {write_result('qr_decide', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
