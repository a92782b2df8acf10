-- A holder as far as the rules need one (docs/privacy.md): no rule reads the unit or the
-- department, and the ID-number columns were never written. A stolen board should hold none of
-- them, so the columns go. Names, PIN hashes and face data depend on the configuration and are
-- cut down at start (terminal/store/keeping.py).
ALTER TABLE holders DROP COLUMN unit;
ALTER TABLE holders DROP COLUMN dept;
ALTER TABLE holders DROP COLUMN id_number_hash;
ALTER TABLE holders DROP COLUMN id_number_last4;
