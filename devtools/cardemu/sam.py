"""An emulated PSAM answering the commands documented on :class:`drivers.keystore.PsamKeyStore`."""

import time
from collections.abc import Mapping

from devtools.cardemu.vpcd import make_atr
from drivers.keystore import (
    DEFAULT_SAM_AID,
    DIVERSIFICATION_CONSTANT,
    KEY_LENGTH,
    diversify,
    encrypt_block,
)

SAM_ATR = make_atr(b"YKT-PSAM")
_DIVERSIFY_DATA_LENGTH = 19


def _sw(value: int) -> bytes:
    return value.to_bytes(2, "big")


class EmulatedSam:
    """Master keys by key id; implements :class:`devtools.cardemu.vpcd.VirtualCard`."""

    def __init__(
        self,
        master_keys: Mapping[int, bytes],
        *,
        aid: bytes | None = DEFAULT_SAM_AID,
        chain: bool = False,
        slow: float = 0.0,
    ) -> None:
        if not master_keys or any(len(k) != KEY_LENGTH for k in master_keys.values()):
            raise ValueError("the SAM needs at least one 16-byte master key")
        self._keys = dict(master_keys)
        self._aid = aid
        self._chain = chain
        self._slow = slow
        self._selected = aid is None
        self._card_key: bytes | None = None
        self._pending = b""
        self.apdu_log: list[bytes] = []

    def __repr__(self) -> str:
        return f"EmulatedSam(key_ids={sorted(self._keys)})"

    def atr(self) -> bytes:
        return SAM_ATR

    def power_off(self) -> None:
        self.reset()

    def power_on(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._selected = self._aid is None
        self._card_key = None
        self._pending = b""

    def process(self, apdu: bytes) -> bytes | None:
        self.apdu_log.append(apdu)
        if self._slow:
            time.sleep(self._slow)
        if len(apdu) < 4:
            return _sw(0x6700)
        answer, sw = self._dispatch(apdu)
        if answer and self._chain and apdu[1] != 0xC0:
            self._pending = answer
            return _sw(0x6100 | len(answer))
        return answer + _sw(sw)

    def _dispatch(self, apdu: bytes) -> tuple[bytes, int]:
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        if (cla, ins) == (0x00, 0xC0):
            return self._get_response(body)
        self._pending = b""
        if (cla, ins) == (0x00, 0xA4):
            return self._select(p1, p2, body)
        if cla != 0x80:
            return b"", 0x6E00
        if ins not in (0x1A, 0xFA):
            return b"", 0x6D00
        if not self._selected:
            return b"", 0x6985
        if ins == 0x1A:
            return self._diversify(p1, p2, body)
        return self._cipher(p1, p2, body)

    def _get_response(self, body: bytes) -> tuple[bytes, int]:
        if not self._pending or len(body) != 1:
            return b"", 0x6985
        if (body[0] or 256) != len(self._pending):
            return b"", 0x6C00 | len(self._pending)
        answer, self._pending = self._pending, b""
        return answer, 0x9000

    def _select(self, p1: int, p2: int, body: bytes) -> tuple[bytes, int]:
        if (p1, p2) != (0x04, 0x00) or not body or len(body) < 1 + body[0]:
            return b"", 0x6A86
        name = body[1 : 1 + body[0]]
        if self._aid is None or name != self._aid:
            return b"", 0x6A82
        self._selected = True
        self._card_key = None
        fci_body = bytes([0x84, len(name)]) + name
        return bytes([0x6F, len(fci_body)]) + fci_body, 0x9000

    def _diversify(self, p1: int, p2: int, body: bytes) -> tuple[bytes, int]:
        self._card_key = None
        if p1 != 0x00:
            return b"", 0x6A86
        if not body or body[0] != _DIVERSIFY_DATA_LENGTH or len(body) != 1 + body[0]:
            return b"", 0x6700
        data = body[1:]
        if data[0] != DIVERSIFICATION_CONSTANT:
            return b"", 0x6A80
        master = self._keys.get(p2)
        if master is None:
            return b"", 0x6A88
        self._card_key = diversify(master, data[1:11], data[11:19])
        return b"", 0x9000

    def _cipher(self, p1: int, p2: int, body: bytes) -> tuple[bytes, int]:
        if (p1, p2) != (0x00, 0x00):
            return b"", 0x6A86
        if len(body) not in (17, 18) or body[0] != 16:
            return b"", 0x6700
        if self._card_key is None:
            return b"", 0x6985
        return encrypt_block(self._card_key, body[1:17]), 0x9000
