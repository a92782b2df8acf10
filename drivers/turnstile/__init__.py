"""Serial turnstile/relay board: protocol codec and the :class:`SerialGate` driver.

``codec`` is pure (bytes in, messages out); ``board`` is the only module here that imports
pyserial. The board's far end for the demo and the tests is a development tool
(``devtools/simboard.py``). The wire protocol is specified in ``docs/turnstile-protocol.md``.
"""

from drivers.turnstile.board import SecurityEvent, SecurityKind, SerialGate, SerialGateSettings

__all__ = ["SecurityEvent", "SecurityKind", "SerialGate", "SerialGateSettings"]
