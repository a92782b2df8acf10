"""Topic names (PROTOCOL.md "Topics") and the message type each one carries.

Every topic is built here and nowhere else, so the broker ACL example, docs/protocol.md and the
code cannot drift apart unnoticed (a test compares them).
"""

from dataclasses import dataclass

DEFAULT_PREFIX = "ykt/v1"

# topic suffix -> envelope type. Site-wide topics first, then per-terminal ones. The keyset is
# site-wide too but no envelope: it is signed by the offline root key (sync.keyset).
SITE_TOPICS = {"head": "head", "changes": "changes", "deny": "deny", "keys": "keyset"}
KEYSET_TOPIC = "keys"
HQ_TO_TERMINAL = {"snapshot": "snapshot", "cmd": "cmd", "txack": "txack"}
TERMINAL_TO_HQ = {
    "tx": "tx",
    "event": "event",
    "resync": "resync",
    "reply": "reply",
    "status": "status",
}


def check_segment(value: str, what: str) -> str:
    """A site or terminal id must be one topic level: no ``/``, ``+``, ``#`` or NUL."""
    if not value or any(ch in value for ch in "/+#\0"):
        raise ValueError(f"{what} {value!r} cannot be used in a topic name")
    return value


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics of one site, and of one terminal in it when ``tid`` is given."""

    prefix: str
    site: str
    tid: str = ""

    def __post_init__(self) -> None:
        if not self.prefix or self.prefix.endswith("/") or any(c in self.prefix for c in "+#"):
            raise ValueError(f"topic prefix {self.prefix!r} is not usable")
        check_segment(self.site, "site")
        if self.tid:
            check_segment(self.tid, "terminal id")

    def site_topic(self, name: str) -> str:
        return f"{self.prefix}/{self.site}/{name}"

    def terminal_topic(self, name: str, tid: str | None = None) -> str:
        who = tid or self.tid
        if not who:
            raise ValueError("a terminal topic needs a terminal id")
        return f"{self.prefix}/{self.site}/{who}/{name}"

    @property
    def head(self) -> str:
        return self.site_topic("head")

    @property
    def changes(self) -> str:
        return self.site_topic("changes")

    @property
    def deny(self) -> str:
        return self.site_topic("deny")

    @property
    def keys(self) -> str:
        return self.site_topic(KEYSET_TOPIC)

    def terminal_subscriptions(self) -> list[str]:
        """What a terminal subscribes to: the site's broadcasts and its own inbox."""
        return [self.keys, self.head, self.deny, self.changes] + [
            self.terminal_topic(name) for name in HQ_TO_TERMINAL
        ]

    def hq_subscriptions(self, share_group: str | None = None) -> list[str]:
        """What HQ subscribes to; ``share_group`` spreads consumers over ``$share``."""
        topics = [f"{self.prefix}/{self.site}/+/{name}" for name in TERMINAL_TO_HQ]
        if share_group:
            # status is retained fleet state, every HQ instance wants all of it
            return [t if t.endswith("/status") else f"$share/{share_group}/{t}" for t in topics]
        return topics

    def split(self, topic: str) -> tuple[str | None, str] | None:
        """``(tid or None, name)`` for a topic of this site, ``None`` for anything else."""
        base = f"{self.prefix}/{self.site}/"
        if not topic.startswith(base):
            return None
        rest = topic[len(base) :].split("/")
        if len(rest) == 1 and rest[0] in SITE_TOPICS:
            return None, rest[0]
        if len(rest) == 2 and rest[1] in HQ_TO_TERMINAL | TERMINAL_TO_HQ and rest[0]:
            return rest[0], rest[1]
        return None
