-- The transaction journal: append-only, hash-chained, gap-free seq per terminal.
CREATE TABLE journal (
    seq       INTEGER PRIMARY KEY,
    id        TEXT NOT NULL UNIQUE,
    kind      TEXT NOT NULL,
    at        TEXT NOT NULL,
    card      TEXT,
    holder_id TEXT,
    decision  TEXT NOT NULL CHECK (decision IN ('allow', 'deny')),
    reason    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    -- The whole record as canonical JSON, exactly as uploaded to HQ.
    record    TEXT NOT NULL
) STRICT;
CREATE INDEX journal_by_card ON journal (card, seq) WHERE card IS NOT NULL;
CREATE INDEX journal_by_holder ON journal (holder_id, seq) WHERE holder_id IS NOT NULL;

-- Security events (lost card used, cloned card, ...), journalled and uploaded.
CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    type      TEXT NOT NULL,
    at        TEXT NOT NULL,
    tx_seq    INTEGER REFERENCES journal (seq),
    card      TEXT,
    holder_id TEXT,
    door      TEXT,
    detail    TEXT NOT NULL DEFAULT '{}'
) STRICT;

-- What still has to reach HQ. A row leaves only when HQ acknowledged it (txack), never on PUBACK.
CREATE TABLE outbox (
    topic        TEXT NOT NULL CHECK (topic IN ('tx', 'event')),
    ref          INTEGER NOT NULL,
    queued_at    TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_sent_at TEXT,
    PRIMARY KEY (topic, ref)
) STRICT, WITHOUT ROWID;

-- High-water marks of the HQ link: change seq applied, head seen, tx acknowledged, snapshot id.
CREATE TABLE sync_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
