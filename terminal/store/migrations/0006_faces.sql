-- Face templates per recognition model, and stills kept only as evidence of security events.
-- Templates are little-endian float32 unit vectors; `model` says which network made them and a
-- template is only ever compared with templates of the same model (docs/faces.md).
CREATE TABLE face_templates (
    holder_id TEXT NOT NULL,
    model     TEXT NOT NULL,
    template  BLOB NOT NULL,
    source    TEXT NOT NULL CHECK (source IN ('hq', 'device')),
    quality   REAL,
    updated   TEXT NOT NULL,
    PRIMARY KEY (holder_id, model)
) STRICT, WITHOUT ROWID;
CREATE INDEX face_templates_by_model ON face_templates (model);

-- A camera still of a security event (card+face mismatch, lost card presented). Never for an
-- ordinary passage. Deleted when `expires` passes and when the holder is removed.
CREATE TABLE face_stills (
    id        INTEGER PRIMARY KEY,
    event_id  INTEGER,
    holder_id TEXT,
    kind      TEXT NOT NULL,
    at        TEXT NOT NULL,
    expires   TEXT NOT NULL,
    jpeg      BLOB NOT NULL
) STRICT;
CREATE INDEX face_stills_by_holder ON face_stills (holder_id);
CREATE INDEX face_stills_by_expiry ON face_stills (expires);

-- HQ's face.upsert lands in `faces` (0005). A template that comes with it is mirrored here in
-- the same transaction, so the sync code needs no change and the two tables cannot disagree.
CREATE TRIGGER faces_template_insert AFTER INSERT ON faces
WHEN NEW.template IS NOT NULL AND NEW.model IS NOT NULL
BEGIN
    INSERT INTO face_templates (holder_id, model, template, source, quality, updated)
    VALUES (NEW.holder_id, NEW.model, NEW.template, 'hq', NULL,
            strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
    ON CONFLICT (holder_id, model) DO UPDATE SET template = excluded.template,
        source = 'hq', quality = NULL, updated = excluded.updated;
END;

CREATE TRIGGER faces_template_update AFTER UPDATE OF template, model ON faces
WHEN NEW.template IS NOT NULL AND NEW.model IS NOT NULL
BEGIN
    INSERT INTO face_templates (holder_id, model, template, source, quality, updated)
    VALUES (NEW.holder_id, NEW.model, NEW.template, 'hq', NULL,
            strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
    ON CONFLICT (holder_id, model) DO UPDATE SET template = excluded.template,
        source = 'hq', quality = NULL, updated = excluded.updated;
END;

-- face.delete: the holder's face data goes, whichever model or source made it.
CREATE TRIGGER faces_deleted AFTER DELETE ON faces
BEGIN
    DELETE FROM face_templates WHERE holder_id = OLD.holder_id;
END;

-- holder.delete: everything personal about the holder goes, evidence stills included.
CREATE TRIGGER holders_deleted_faces AFTER DELETE ON holders
BEGIN
    DELETE FROM face_templates WHERE holder_id = OLD.id;
    DELETE FROM face_stills WHERE holder_id = OLD.id;
END;
