"""``ykt diag watch``: the dashboard that refreshes in place (rich ``Live``).

Each refresh is one ``watch`` request over the same connection: status, the newest decisions
from the journal and, from the running flow, notices such as "tap again" or what the POS display
last said ("system fault"). ``--json`` prints one snapshot per line instead.
"""

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from terminal.diag.render import (
    decision_text,
    grid,
    headline,
    local_time,
    pairs,
    role_text,
    status_rows,
)

Fetch = Callable[[], dict[str, Any]]
_SHOWN = ("daemon", "reader", "gate", "sync", "outbox", "clock")


def dashboard(result: Mapping[str, Any], refreshed: str = "") -> RenderableType:
    state = result.get("status") or {}
    tz = state.get("clock", {}).get("timezone")
    problems = state.get("problems") or []
    parts: list[RenderableType] = [
        Text(
            f"ykt diag watch - {state.get('terminal_id')} - {role_text(state.get('role', {}))}",
            style="bold",
        ),
        Text(refreshed, style="dim"),
        headline(result.get("level"), problems[0] if problems else "healthy"),
        pairs([row for row in status_rows(state) if row[0] in _SHOWN]),
    ]
    recent = result.get("recent") or []
    parts.append(
        grid(
            ("seq", "time", "kind", "", "reason", "card"),
            (
                (
                    r["seq"],
                    local_time(r.get("at"), tz, with_date=False),
                    r.get("kind"),
                    decision_text(r.get("decision")),
                    r.get("reason"),
                    r.get("card"),
                )
                for r in recent
            ),
            title="last decisions",
        )
        if recent
        else Text("no decisions yet", style="dim")
    )
    # Taps are already in "last decisions"; the rest (tap again, alarms, screens) goes here.
    notices = [a for a in result.get("activity") or [] if a.get("what") != "tap"]
    if notices:
        parts.append(
            grid(
                ("time", "notice"),
                (
                    (
                        local_time(a.get("at"), tz, with_date=False),
                        a.get("headline") or a.get("reason") or a.get("what"),
                    )
                    for a in notices[-5:]
                ),
                title="flow notices",
            )
        )
    return Group(*parts)


def run(console: Console, fetch: Fetch, *, count: int, interval: float) -> dict[str, Any]:
    """Refresh until ``count`` snapshots were shown (0: until Ctrl-C); returns the last one."""
    result: dict[str, Any] = {}
    done = 0
    try:
        with Live(console=console, auto_refresh=False, transient=False) as live:
            while count == 0 or done < count:
                result = fetch()
                stamp = datetime.now().strftime("%H:%M:%S")
                refreshed = f"refreshed {stamp}, every {interval:g}s; Ctrl-C ends"
                live.update(dashboard(result, refreshed), refresh=True)
                done += 1
                if count == 0 or done < count:
                    time.sleep(interval)
    except KeyboardInterrupt:
        pass
    if not console.is_terminal:
        console.line()  # a pipe gets the last frame only, without its final newline
    return result


def run_json(
    emit: Callable[[dict[str, Any]], None], fetch: Fetch, *, count: int, interval: float
) -> dict[str, Any]:
    """One JSON snapshot per refresh, for scripts and log collectors."""
    result: dict[str, Any] = {}
    done = 0
    try:
        while count == 0 or done < count:
            result = fetch()
            emit(result)
            done += 1
            if count == 0 or done < count:
                time.sleep(interval)
    except KeyboardInterrupt:
        pass
    return result
