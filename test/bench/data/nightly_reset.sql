-- test/bench/data/nightly_reset.sql: last night's state again (issue 16),
-- untimed, before every run of either side of a nightly benchmark.
--
-- The rows of :t_due due now are put back (whatever is left of them removed, the
-- table vacuumed so that they go back where they were, then inserted as a
-- restore does, triggers off), and the marks of :t's leaves say that the
-- last sweep ran before any of them was due (an hour before the first fell
-- due), with no full pass asked for (the restore asks for one: these rows
-- are last night's, not restored ones).  Both sides then start from the same table: the hand-written
-- statement and the sweep remove the same rows.
SET client_min_messages = warning;
-- only what is due now leaves :t: the floors' trigger refuses to delete a
-- row not yet due, and those of :t_due are still there
SELECT now() - interval '1 year' AS reset_due \gset
DELETE FROM :"t" WHERE ended_at <= :'reset_due';
VACUUM :"t";
BEGIN;
SET LOCAL session_replication_role = replica;
INSERT INTO :"t" SELECT * FROM :"t_due" WHERE ended_at <= :'reset_due';
COMMIT;
UPDATE retention.sweep_mark SET swept_cutoff = :'t0'::timestamptz + interval '1 year' - interval '1 hour',
	   requested_at = NULL, reason = NULL
 WHERE root = :'t'::regclass;
DELETE FROM :"t_base" WHERE ended_at <= (SELECT max(ended_at) FROM :"t_due");
VACUUM :"t_base";
INSERT INTO :"t_base" SELECT * FROM :"t_due";
VACUUM (FREEZE) :"t_base";
VACUUM (FREEZE) :"t";
RESET client_min_messages;
CHECKPOINT;
