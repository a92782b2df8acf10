"""Money is an integer number of fen (分). There are no floats anywhere near money."""

from typing import NewType

Fen = NewType("Fen", int)


def format_yuan(amount: Fen) -> str:
    """Render fen as yuan for a display, e.g. ``1250`` -> ``"12.50"``, ``-5`` -> ``"-0.05"``."""
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(int(amount)), 100)
    return f"{sign}{whole}.{cents:02d}"
