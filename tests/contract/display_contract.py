"""The Display contract: what the tap loop may rely on, whichever screen the customer faces.

What every implementation of :class:`drivers.interfaces.Display` promises:

- ``show`` accepts every :class:`~drivers.interfaces.Screen`: each tone (info, ok, error,
  prompt), no headline, no lines or a dozen, Chinese and English text as the till shows it, text
  too long for any panel; what it shows is that screen, and each ``show`` replaces the one
  before;
- ``show`` returns promptly: the loop calls it on its own thread, which never waits on a device;
- ``close`` is harmless twice, and ``show`` after ``close`` either does nothing or raises
  :class:`~models.errors.DriverError` (the only error the loop catches from a display), never
  anything else.

Run on :class:`drivers.sim.SimDisplay` in tests/contract/test_display.py. A new display (the kiosk
driver) subclasses :class:`DisplayContract` with a ``harness`` fixture whose ``shown`` reads back
what its device shows now (the kiosk page's state).
"""

import time
from typing import Protocol

import pytest

from drivers.interfaces import Display, Screen
from models.errors import DriverError

PROMPT_SECONDS = 0.5  # longer than any show may take

SCREENS: tuple[Screen, ...] = (
    Screen("请刷卡 Please tap your card"),
    Screen("支付成功 Paid", ("张** ¥12.50", "补贴 ¥10.00 + 现金 ¥2.50", "余额 ¥87.50"), "ok"),
    Screen("余额不足 Insufficient balance", ("余额 ¥3.20",), "error"),
    Screen("请输入密码 Enter PIN", ("******",), "prompt"),
    Screen("上笔已扣款 Last payment taken", ("不要重复扣款 Do not charge again",), "info"),
    Screen("", (), "info"),
    Screen("长" * 200, tuple(f"line {i} " + "文" * 80 for i in range(12)), "info"),
)


class DisplayHarness(Protocol):
    display: Display

    def shown(self) -> Screen | None:
        """What the device shows now, as a customer would read it; ``None`` before any show."""
        ...


class DisplayContract:
    """Subclass as ``Test...`` with a ``harness`` fixture that yields a ready harness; the
    harness closes its display at teardown (closing twice is part of the contract)."""

    def test_every_screen_is_shown(self, harness: DisplayHarness) -> None:
        for screen in SCREENS:
            harness.display.show(screen)
            assert harness.shown() == screen

    def test_the_screens_cover_every_tone(self) -> None:
        assert {s.tone for s in SCREENS} == {"info", "ok", "error", "prompt"}

    def test_each_show_replaces_the_one_before(self, harness: DisplayHarness) -> None:
        first, second = SCREENS[0], SCREENS[1]
        harness.display.show(first)
        harness.display.show(second)
        assert harness.shown() == second
        harness.display.show(first)  # the same screen again is shown again
        assert harness.shown() == first

    def test_show_returns_promptly(self, harness: DisplayHarness) -> None:
        for screen in SCREENS * 3:
            started = time.monotonic()
            harness.display.show(screen)
            took = time.monotonic() - started
            assert took < PROMPT_SECONDS, f"show took {took:.2f} s"

    def test_close_is_harmless_twice_and_ends_showing_quietly(
        self, harness: DisplayHarness
    ) -> None:
        harness.display.show(SCREENS[0])
        harness.display.close()
        harness.display.close()
        try:
            harness.display.show(SCREENS[1])
        except DriverError:
            pass  # allowed; anything else would escape the loop's handler
        except Exception as exc:
            pytest.fail(f"show after close raised {type(exc).__name__}, not DriverError: {exc}")
