-- Admissions whose gate was opened and whose passage outcome is not yet journalled. A row is
-- written with the admission and removed with its passage record, in the same transactions, so
-- one left at start is an opening a crash cut short: journalled then as an unknown outcome.
CREATE TABLE awaiting_passage (
    tx_id TEXT PRIMARY KEY,
    seq   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
