-- Who may do what: the allowlist HQ maintains through the change log.
CREATE TABLE holders (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    unit            TEXT NOT NULL DEFAULT '',
    dept            TEXT NOT NULL DEFAULT '',
    card_class      TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'spend_only', 'inactive')),
    valid_from      TEXT,
    valid_until     TEXT,
    spend_only_until TEXT,
    require_face    INTEGER NOT NULL DEFAULT 0,
    pin_hash        TEXT,
    -- The ID number itself never reaches the terminal: a salted hash and the last four digits.
    id_number_hash  TEXT,
    id_number_last4 TEXT,
    services        TEXT NOT NULL DEFAULT '[]',
    canteens        TEXT NOT NULL DEFAULT '[]',
    change_seq      INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE cards (
    number       TEXT PRIMARY KEY,
    holder_id    TEXT NOT NULL,
    issue_seq    INTEGER NOT NULL,
    uid          TEXT,
    card_class   TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'lost', 'replaced', 'frozen', 'expired',
                                   'spend_only', 'cancelled')),
    valid_from   TEXT,
    valid_until  TEXT,
    status_since TEXT,
    change_seq   INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX cards_by_holder ON cards (holder_id, issue_seq);
CREATE UNIQUE INDEX cards_by_uid ON cards (uid) WHERE uid IS NOT NULL;

CREATE TABLE access_groups (
    id         TEXT PRIMARY KEY,
    calendar   TEXT NOT NULL DEFAULT '',
    change_seq INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE group_doors (
    door_id  TEXT NOT NULL,
    group_id TEXT NOT NULL REFERENCES access_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (door_id, group_id)
) STRICT, WITHOUT ROWID;

-- days: bit n set = ISO weekday n (1..7) or 8 = public holiday.
CREATE TABLE group_windows (
    group_id  TEXT NOT NULL REFERENCES access_groups (id) ON DELETE CASCADE,
    days      INTEGER NOT NULL CHECK (days > 0 AND days < 512),
    start_min INTEGER NOT NULL CHECK (start_min BETWEEN 0 AND 1439),
    end_min   INTEGER NOT NULL CHECK (end_min BETWEEN 0 AND 1440)
) STRICT;
CREATE INDEX group_windows_by_group ON group_windows (group_id);

CREATE TABLE holder_groups (
    holder_id TEXT NOT NULL,
    group_id  TEXT NOT NULL,
    PRIMARY KEY (holder_id, group_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE calendar_days (
    calendar TEXT NOT NULL,
    day      TEXT NOT NULL,
    kind     TEXT NOT NULL CHECK (kind IN ('holiday', 'workday')),
    PRIMARY KEY (calendar, day)
) STRICT, WITHOUT ROWID;

-- Meal periods, prices, limits and bindings; the body is the rule's JSON as HQ sent it.
CREATE TABLE rules (
    id         TEXT PRIMARY KEY,
    type       TEXT NOT NULL,
    body       TEXT NOT NULL,
    change_seq INTEGER NOT NULL DEFAULT 0
) STRICT;
