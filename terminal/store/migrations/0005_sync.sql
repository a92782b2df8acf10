-- What the HQ link needs beyond the allowlist tables (docs/protocol.md).

-- QR keys of a holder, as holder.upsert sends them: [{"k", "pub"}].
ALTER TABLE holders ADD COLUMN qr_keys TEXT NOT NULL DEFAULT '[]';

-- Priority deny entries that are ahead of the applied change log. A card upsert older than one of
-- these keeps the denying status; rows at or below the applied seq are deleted as the log passes.
CREATE TABLE card_deny (
    number TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    since  TEXT,
    seq    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- HQ signing keys added or revoked by signed `keys` changes (the config lists the first ones).
CREATE TABLE hq_keys (
    kid        TEXT PRIMARY KEY,
    pub        BLOB,
    revoked    INTEGER NOT NULL DEFAULT 0,
    change_seq INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Face templates (model id + little-endian float32) or a photo for on-device enrolment.
CREATE TABLE faces (
    holder_id  TEXT PRIMARY KEY,
    model      TEXT,
    template   BLOB,
    photo      BLOB,
    change_seq INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Commands executed, by envelope id: each at most once.
CREATE TABLE commands_done (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    received_at TEXT NOT NULL,
    outcome     TEXT
) STRICT, WITHOUT ROWID;

