-- The wallet cache: HQ owns the ledger, the terminal caches balances as of a ledger position.
CREATE TABLE purses (
    account    TEXT NOT NULL,
    purse      TEXT NOT NULL CHECK (purse IN ('cash', 'meal_subsidy', 'barber_subsidy',
                                              'work_meals')),
    balance    INTEGER NOT NULL,
    expires    TEXT,
    change_seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, purse)
) STRICT, WITHOUT ROWID;

CREATE TABLE ledger (
    id            TEXT PRIMARY KEY,
    account       TEXT NOT NULL,
    purse         TEXT NOT NULL,
    delta         INTEGER NOT NULL,
    balance_after INTEGER NOT NULL,
    reason        TEXT NOT NULL,
    origin_tid    TEXT,
    origin_tx_seq INTEGER,
    origin_tx_id  TEXT,
    at            TEXT NOT NULL,
    change_seq    INTEGER NOT NULL
) STRICT;
CREATE INDEX ledger_by_account ON ledger (account, purse, change_seq);
CREATE INDEX ledger_by_origin ON ledger (origin_tx_id) WHERE origin_tx_id IS NOT NULL;

-- This terminal's debits HQ has not yet echoed back as ledger entries.
CREATE TABLE pending_debits (
    tx_id   TEXT PRIMARY KEY,
    tx_seq  INTEGER NOT NULL REFERENCES journal (seq),
    account TEXT NOT NULL,
    purse   TEXT NOT NULL,
    amount  INTEGER NOT NULL CHECK (amount > 0),
    at      TEXT NOT NULL
) STRICT;
CREATE INDEX pending_debits_by_account ON pending_debits (account, purse);
