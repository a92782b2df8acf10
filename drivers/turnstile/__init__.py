"""Serial turnstile/relay board: protocol codec, the :class:`SerialGate` driver, a simulated board.

``codec`` is pure (bytes in, messages out); ``board`` is the only module here that imports
pyserial; ``simboard`` is the board's far end for the demo and the integration tests. The wire
protocol is specified in ``docs/turnstile-protocol.md``.
"""

from drivers.turnstile.board import SecurityEvent, SecurityKind, SerialGate, SerialGateSettings

__all__ = ["SecurityEvent", "SecurityKind", "SerialGate", "SerialGateSettings"]
