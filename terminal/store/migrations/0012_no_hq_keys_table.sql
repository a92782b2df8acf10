-- HQ's online keys now come as one keyset signed by the root key, kept whole in sync_state
-- (hq_keyset); the per-key rows of the old `keys` changes are read by nothing.
DROP TABLE IF EXISTS hq_keys;
