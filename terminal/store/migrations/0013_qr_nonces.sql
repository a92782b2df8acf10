-- Electronic-card codes accepted here, by holder and nonce, kept until the code's expiry plus the
-- clock skew (unix seconds): a code shown again within its minute is a replay, also after a
-- restart. Written in the transaction of the record that accepted the code.
CREATE TABLE qr_nonces (
    holder_id  TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    keep_until INTEGER NOT NULL,
    PRIMARY KEY (holder_id, nonce)
) STRICT, WITHOUT ROWID;
CREATE INDEX qr_nonces_by_expiry ON qr_nonces (keep_until);
