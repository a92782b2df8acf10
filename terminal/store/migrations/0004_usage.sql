-- What the rules look up on every tap, in small tables that stay in memory. The journal becomes
-- append-only with no secondary index: random inserts into two 10,000,000-row indexes put
-- several milliseconds into the slowest taps.
DROP INDEX journal_by_card;
DROP INDEX journal_by_holder;

-- Per card at this terminal: the last confirmed passage (anti-passback) and last payment
-- (duplicate-tap guard). Times are site-local ISO 8601 with offset.
CREATE TABLE card_usage (
    card            TEXT PRIMARY KEY,
    last_direction  TEXT,
    last_passage_at TEXT,
    last_charge_at  TEXT
) STRICT, WITHOUT ROWID;

-- Per account and site-local day: money spent (daily limit) and when a subsidy or work meal paid
-- a meal (one subsidised meal per meal period), as a JSON list of ISO times.
CREATE TABLE account_day (
    account    TEXT NOT NULL,
    day        TEXT NOT NULL,
    spent      INTEGER NOT NULL DEFAULT 0,
    subsidised TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (account, day)
) STRICT, WITHOUT ROWID;

-- Consecutive wrong PINs per account; reset by a right one.
CREATE TABLE pin_state (
    account  TEXT PRIMARY KEY,
    failures INTEGER NOT NULL DEFAULT 0,
    last_at  TEXT
) STRICT, WITHOUT ROWID;

-- What corrections gave back, per original payment and purse.
CREATE TABLE refunds (
    original_id TEXT NOT NULL,
    purse       TEXT NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount > 0),
    tx_seq      INTEGER NOT NULL REFERENCES journal (seq)
) STRICT;
CREATE INDEX refunds_by_original ON refunds (original_id);

-- A payment split over two purses is two pending rows of one transaction.
DROP TABLE pending_debits;
CREATE TABLE pending_debits (
    tx_id   TEXT NOT NULL,
    tx_seq  INTEGER NOT NULL REFERENCES journal (seq),
    account TEXT NOT NULL,
    purse   TEXT NOT NULL,
    amount  INTEGER NOT NULL CHECK (amount > 0),
    at      TEXT NOT NULL,
    PRIMARY KEY (tx_id, purse)
) STRICT;
CREATE INDEX pending_debits_by_account ON pending_debits (account, purse);
