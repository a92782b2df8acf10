"""Human output of the diag commands: rich tables that fit an 80-column serial console.

Every renderer takes the same dict ``--json`` prints, so both forms always say the same thing.
Markers are plain ASCII (``[OK]``), since a serial console may lack the fonts for symbols.
"""

from collections.abc import Callable, Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from terminal.diag.facts import parse_time

_LEVEL_STYLE = {
    "ok": ("[OK]", "bold green"),
    "degraded": ("[DEGRADED]", "bold yellow"),
    "failed": ("[FAILED]", "bold red"),
    "not_available": ("[NOT AVAILABLE]", "bold magenta"),
}
DASH = "-"


def size(n: Any) -> str:
    if not isinstance(n, int):
        return DASH
    amount = float(n)
    for unit in ("B", "KB", "MB"):
        if amount < 1000:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} GB"


def duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return DASH
    s = int(seconds)
    if s < 0:
        return f"-{duration(-s)}"
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def local_time(text: Any, timezone: str | None, with_date: bool = True) -> str:
    moment = parse_time(text if isinstance(text, str) else None)
    if moment is None:
        return DASH
    if timezone:
        moment = moment.astimezone(ZoneInfo(timezone))
    return moment.strftime("%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def value(v: Any) -> str:
    if v is None or v == "":
        return DASH
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def badge(level: Any) -> Text:
    label, style = _LEVEL_STYLE.get(str(level), (f"[{level}]", "bold"))
    return Text(label, style=style)


def headline(level: Any, message: str) -> Text:
    return Text.assemble(badge(level), " ", message)


def pairs(rows: Iterable[tuple[str, Any]]) -> Table:
    """A two-column key/value table without borders: the densest thing that stays readable."""
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for key, shown in rows:
        table.add_row(key, shown if isinstance(shown, Text) else value(shown))
    return table


def grid(headers: Iterable[str], rows: Iterable[Iterable[Any]], title: str | None = None) -> Table:
    table = Table(box=None, title=title, title_justify="left", pad_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(cell if isinstance(cell, Text) else value(cell) for cell in row))
    return table


def health_text(health: Mapping[str, Any] | None) -> Text:
    if not health:
        return Text("unknown (daemon not running)", style="dim")
    style = "green" if health.get("ok") else "red"
    detail = f" - {health['detail']}" if health.get("detail") else ""
    return Text.assemble((value(health.get("state")), style), detail)


def decision_text(decision: Any) -> Text:
    return Text(value(decision), style="green" if decision == "allow" else "red")


# -- status --------------------------------------------------------------------------------------


def role_text(role: Mapping[str, Any]) -> str:
    if role.get("kind") == "door":
        return f"door {role.get('door')} ({role.get('direction')})"
    return f"POS {role.get('merchant')} ({role.get('service')})"


def status_rows(status: Mapping[str, Any]) -> list[tuple[str, Any]]:
    daemon, db, sync = status.get("daemon", {}), status.get("database", {}), status.get("sync", {})
    clock, disk = status.get("clock", {}), status.get("disk", {})
    rows: list[tuple[str, Any]] = []
    if daemon.get("running"):
        rows.append(
            (
                "daemon",
                f"running, pid {daemon.get('pid')}, up {duration(daemon.get('uptime_s'))}, "
                f"mode {status.get('mode')}, flow {daemon.get('flow_state')}",
            )
        )
    elif daemon.get("running") is None:
        rows.append(("daemon", Text(f"unknown: {daemon.get('unknown')}", style="yellow")))
    else:
        rows.append(("daemon", Text("not running (read from the database)", style="red")))
    devices = status.get("devices") or {}
    for name in ("reader", "gate"):
        if name in devices or not daemon.get("running"):
            if name == "gate" and status.get("role", {}).get("kind") != "door":
                continue
            rows.append((name, health_text(devices.get(name))))
    if status.get("gate_link"):
        rows.append(("gate link", gate_link_text(status["gate_link"])))
    if "error" in db:
        rows.append(("database", Text(str(db["error"]), style="red")))
    else:
        counts = db.get("counts", {})
        rows.append(
            (
                "database",
                f"{size(db.get('size_bytes'))} (+WAL {size(db.get('wal_bytes'))}), schema "
                f"{db.get('schema_version')}/{db.get('schema_latest')}; "
                + ", ".join(f"{k} {v}" for k, v in counts.items()),
            )
        )
    outbox = sync.get("outbox") or {}
    link = sync.get("link")
    rows.append(
        (
            "sync",
            ("enabled" if sync.get("enabled") else "not enabled")
            + (f", link {'online' if link.get('connected') else 'offline'}" if link else "")
            + (f", rejected {rejected_text(link.get('rejected'))}" if link else "")
            + f"; change seq {value(sync.get('change_seq'))}, head "
            f"{value(sync.get('head_seq'))} (age {duration(sync.get('head_age_s'))}), "
            f"acked {value(sync.get('tx_acked'))}/{value(sync.get('journal_last_seq'))}",
        )
    )
    rows.append(
        (
            "outbox",
            f"{value(outbox.get('tx'))} tx, {value(outbox.get('event'))} events, oldest "
            f"{duration(outbox.get('oldest_age_s'))}",
        )
    )
    ntp = clock.get("ntp_synchronized")
    ntp_text = "unknown" if ntp is None else "synchronised" if ntp else "NOT synchronised"
    offset = clock.get("offset_s")
    rows.append(
        (
            "clock",
            f"{clock.get('local')} {clock.get('timezone')}; NTP {ntp_text} "
            f"(source {clock.get('source')}"
            + (f", offset {offset:+.3f}s" if isinstance(offset, float) else "")
            + ")"
            + (
                f"; {hq:+.0f} s from HQ"
                if isinstance(hq := clock.get("hq_offset_s"), float)
                else ""
            ),
        )
    )
    rows.append(
        (
            "disk",
            f"{size(disk.get('free_bytes'))} free of {size(disk.get('total_bytes'))} "
            f"({value(disk.get('free_pct'))} %) at {disk.get('path')}",
        )
    )
    return rows


def gate_link_text(link: Mapping[str, Any]) -> str:
    """The board's bad frames and what became of its alarms, in one line."""
    reasons = link.get("bad_frame_reasons") or {}
    text = (
        f"bad frames {value(link.get('bad_frames'))} ({value(link.get('bad_frames_recent'))} in"
        f" the last {(link.get('recent_s') or 300) // 60} min"
        + (": " + ", ".join(f"{k} {v}" for k, v in reasons.items()) if reasons else "")
        + ")"
    )
    alarms = link.get("alarms") or {}
    for label, key in (("alarms raised", "raised"), ("repeats", "repeats"), ("flooded", "flooded")):
        if alarms.get(key):
            text += f"; {label} " + ", ".join(f"{k} {v}" for k, v in alarms[key].items())
    if alarms.get("flooding"):
        text += " (flooding now)"
    return text


def status(result: Mapping[str, Any]) -> RenderableType:
    title = (
        f"ykt-terminal {result.get('version')} - {result.get('terminal_id')} @ "
        f"{result.get('site')} - {role_text(result.get('role', {}))}"
    )
    problems = result.get("problems") or []
    parts: list[RenderableType] = [
        Text(title, style="bold"),
        headline(result.get("level"), problems[0] if problems else "healthy"),
    ]
    parts += [Text(f"  also: {p}", style="yellow") for p in problems[1:]]
    parts.append(pairs(status_rows(result)))
    return Group(*parts)


# -- devices -------------------------------------------------------------------------------------


def readers(result: Mapping[str, Any]) -> RenderableType:
    parts: list[RenderableType] = [
        headline(result.get("level"), f"reader driver {result.get('driver')}")
    ]
    if "health" in result:
        parts.append(pairs([("health", health_text(result["health"]))]))
    listed = result.get("readers") or []
    if listed:
        parts.append(
            grid(
                ("PC/SC reader", "used", "ATR"),
                (
                    (r["name"], r["matches"], r.get("atr") or "no card / not reported")
                    for r in listed
                ),
            )
        )
    for key in ("error", "note"):
        if result.get(key):
            parts.append(Text(str(result[key]), style="red" if key == "error" else "dim"))
    return Group(*parts)


def card(result: Mapping[str, Any]) -> RenderableType:
    read, registry, decision = result["read"], result["registry"], result["decision"]
    if decision is None:
        return Group(headline("failed", "the flow reached no decision"))
    if decision.get("needs"):
        verdict, style = f"ASK {decision['needs']}", "bold yellow"
    else:
        verdict = "ALLOW" if decision["allowed"] else "DENY"
        style = "bold green" if decision["allowed"] else "bold red"
    rows: list[tuple[str, Any]] = [
        ("card", read.get("number")),
        ("genuine", read.get("genuine") or read.get("fault")),
        ("issue seq", read.get("issue_seq")),
        ("valid", f"{value(read.get('valid_from'))} .. {value(read.get('valid_until'))}"),
        (
            "registry",
            f"status {value(registry.get('card_status'))}, class "
            f"{value(registry.get('card_class'))}, issue seq {value(registry.get('issue_seq'))}",
        ),
        (
            "holder",
            f"{value(registry.get('holder'))} ({value(registry.get('holder_id'))}, "
            f"{value(registry.get('holder_status'))})",
        ),
        ("would get", Text(f"{verdict} {decision['reason']}", style=style)),
        ("says", f"{decision['message_zh']} / {decision['message_en']}"),
    ]
    if decision.get("alert"):
        rows.append(("alert", Text(str(decision["alert"]), style="bold red")))
    if decision.get("detail"):
        rows.append(("detail", decision["detail"]))
    if decision.get("amount") is not None:
        rows.append(("amount", f"{decision['amount']} fen, split {decision['split']}"))
    face = result.get("face")
    if face:
        rows.append(
            (
                "face",
                f"{face['outcome']}, score {value(face['score'])} "
                f"(threshold {value(face['threshold'])})",
            )
        )
    for record in result.get("would_record", []):
        rows.append(
            (
                "journal",
                f"would record {record['kind']} {record['decision']} {record['reason']} "
                f"({record['credential']})",
            )
        )
    if result.get("gate"):
        rows.append(("gate", "would open now"))
    why = [Text(f"  - {fact}") for fact in result.get("why", [])]
    where = ", ".join(f"{k} {v}" for k, v in result.get("where", {}).items())
    return Group(
        headline(result.get("level"), f"dry run at {where} (view seq {result.get('view_seq')})"),
        pairs(rows),
        *([Text("why:"), *why] if why else []),
        *([Text(str(result["note"]), style="yellow")] if result.get("note") else []),
        Text("Nothing was recorded and the gate was not opened.", style="dim"),
    )


def gate_test(result: Mapping[str, Any]) -> RenderableType:
    rows: list[tuple[str, Any]] = [
        ("opened", result.get("opened")),
        ("passage", result.get("passage")),
        ("elapsed", f"{value(result.get('elapsed_s'))} s of {value(result.get('seconds'))} s"),
        ("board", health_text(result.get("health"))),
    ]
    sensors = result.get("sensors")
    if sensors:
        rows += [(f"  {k}", v) for k, v in sensors.items()]
    for key in ("error", "note", "sensors_note"):
        if result.get(key):
            rows.append((key.replace("_", " "), result[key]))
    return Group(headline(result.get("level"), "gate test"), pairs(rows))


def not_available(result: Mapping[str, Any]) -> RenderableType:
    return headline(result.get("level"), str(result.get("message")))


# -- data ----------------------------------------------------------------------------------------


def tx(result: Mapping[str, Any]) -> RenderableType:
    rows = result.get("transactions") or []
    tz = result.get("timezone")
    if not rows:
        return Text("no matching transactions")
    return grid(
        ("seq", "time", "kind", "", "reason", "card"),
        (
            (
                r["seq"],
                local_time(r.get("at"), tz),
                r.get("kind"),
                decision_text(r.get("decision")),
                r.get("reason"),
                r.get("card"),
            )
            for r in rows
        ),
        title=f"journal, newest first ({tz or 'UTC'})",
    )


def events(result: Mapping[str, Any]) -> RenderableType:
    rows = result.get("events") or []
    tz = result.get("timezone")
    if not rows:
        return Text("no security events")
    return grid(
        ("id", "time", "type", "card", "sent"),
        (
            (r["id"], local_time(r.get("at"), tz), r.get("type"), r.get("card"), r.get("uploaded"))
            for r in rows
        ),
        title=f"security events, newest first ({tz or 'UTC'})",
    )


def rejected_text(counts: Mapping[str, int] | None) -> str:
    """Rejected inbound messages by reason, most first: "bad_sig 3, not_json 1" or "none"."""
    if not counts:
        return "none"
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def sync(result: Mapping[str, Any]) -> RenderableType:
    if "action" in result:
        return headline(result.get("level"), str(result.get("message")))
    outbox = result.get("outbox") or {}
    rows: list[tuple[str, Any]] = [
        ("enabled", result.get("enabled")),
        ("link", result.get("link") or DASH),
        ("rejected since start", rejected_text((result.get("link") or {}).get("rejected"))),
        ("change seq", result.get("change_seq")),
        (
            "head",
            f"seq {value(result.get('head_seq'))}, issued "
            f"{value(result.get('head_issued'))} (age {duration(result.get('head_age_s'))})",
        ),
        (
            "head expires",
            f"{value(result.get('head_expires'))}"
            + (" - EXPIRED" if result.get("head_expired") else ""),
        ),
        ("snapshot", result.get("snapshot_id")),
        (
            "acked",
            f"tx {value(result.get('tx_acked'))} of {value(result.get('journal_last_seq'))}"
            f" ({value(result.get('tx_unacked'))} not acknowledged)",
        ),
        (
            "outbox",
            f"{value(outbox.get('tx'))} tx, {value(outbox.get('event'))} events, oldest "
            f"{value(outbox.get('oldest_at'))} ({duration(outbox.get('oldest_age_s'))})",
        ),
    ]
    note = result.get("note")
    return Group(headline(result.get("level"), note or "sync state"), pairs(rows))


def db_check(result: Mapping[str, Any]) -> RenderableType:
    schema, journal = result.get("schema", {}), result.get("journal", {})
    problems = result.get("problems") or []
    rows: list[tuple[str, Any]] = [
        ("database", result.get("path")),
        ("integrity", "; ".join(result.get("integrity") or [])),
        (
            "schema",
            f"version {schema.get('version')} of {schema.get('latest')}"
            + (f", pending {', '.join(schema['pending'])}" if schema.get("pending") else ""),
        ),
        ("foreign keys", f"{result.get('foreign_key_violations')} violations"),
        ("journal", f"{journal.get('records')} records, chain {journal.get('chain')}"),
        ("counts", ", ".join(f"{k} {v}" for k, v in (result.get("counts") or {}).items())),
    ]
    return Group(
        headline(result.get("level"), problems[0] if problems else "database is sound"),
        *(Text(f"  also: {p}", style="yellow") for p in problems[1:]),
        pairs(rows),
    )


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, item in data.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            rows += _flatten(item, name + ".")
        else:
            rows.append((name, item))
    return rows


def config(result: Mapping[str, Any]) -> RenderableType:
    rows = _flatten(result.get("config") or {}) + _flatten(result.get("diag") or {}, "diag.")
    return Group(
        Text(
            "effective configuration (secrets are references; their contents are never read)",
            style="bold",
        ),
        pairs(rows),
    )


def identity(result: Mapping[str, Any]) -> RenderableType:
    rows: list[tuple[str, Any]] = [
        ("terminal", result.get("terminal_id")),
        ("site", result.get("site")),
        ("key file", result.get("key_file")),
        ("key id", result.get("key_id")),
        ("public key", result.get("public_key")),
    ]
    message = result.get("note") or "public key for HQ enrolment (Ed25519, base64 raw 32 bytes)"
    return Group(headline(result.get("level"), message), pairs(rows))


RENDERERS: dict[str, Callable[[Mapping[str, Any]], RenderableType]] = {
    "status": status,
    "readers": readers,
    "card": card,
    "gate_test": gate_test,
    "tx": tx,
    "events": events,
    "sync": sync,
    "sync_resync": sync,
    "sync_upload": sync,
    "db_check": db_check,
    "config": config,
    "identity": identity,
}


def show(
    console: Console,
    command: str,
    result: Mapping[str, Any],
    more: Mapping[str, Callable[[Mapping[str, Any]], RenderableType]] | None = None,
) -> None:
    """Print ``result``; ``more`` adds renderers kept in modules of their own (render_faces)."""
    if result.get("level") == "not_available" and command not in ("identity",):
        console.print(not_available(result))
        return
    console.print({**RENDERERS, **(more or {})}[command](result))
