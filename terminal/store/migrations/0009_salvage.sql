-- Records read back out of a quarantined database (an earlier journal epoch) that HQ may never
-- have had; sent to HQ marked as salvaged and dropped when HQ names them in a txack.
CREATE TABLE salvaged (
    epoch        TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    record       TEXT NOT NULL,
    last_sent_at TEXT,
    PRIMARY KEY (epoch, seq)
) STRICT, WITHOUT ROWID;
