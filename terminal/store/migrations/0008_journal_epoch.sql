-- The journal's epoch: a random id of this journal, carried by every record from now on.
-- HQ deduplicates by (terminal, epoch, seq), so a journal that had to start again at seq 1 (a
-- database quarantined and replaced) is a new epoch and never taken for records HQ already has.
-- A journal that already holds records keeps the empty epoch those records were sent under.
INSERT OR IGNORE INTO sync_state (key, value)
SELECT 'journal_epoch',
       CASE WHEN EXISTS (SELECT 1 FROM journal) THEN '' ELSE lower(hex(randomblob(16))) END;
