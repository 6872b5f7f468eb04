-- test/bench/data/nightly_reset.sql: last night's state again (issue 16),
-- untimed, before every run of either side of a nightly benchmark.
--
-- The rows of :t_due due now are put back (whatever is left of them removed, the
-- table vacuumed so that they go back where they were, its indexes too:
-- VACUUM otherwise leaves a few dead rows' index entries in place, and each
-- round would add a night of them under the due rows of one side's table and
-- not the other's, whose index scans then read 4 buffers a row instead of 1;
-- then inserted as a
-- restore does, in replica mode, from another session), and the marks of :t's leaves say that the
-- last sweep ran before any of them was due (an hour before the first fell
-- due), with no full pass asked for (the restore asks for one: these rows
-- are last night's, not restored ones).  Both sides then start from the same table: the hand-written
-- statement and the sweep remove the same rows.
SET client_min_messages = warning;
-- only what is due now leaves :t: the floors' trigger refuses to delete a
-- row not yet due, and those of :t_due are still there
SELECT now() - interval '1 year' AS reset_due \gset
DELETE FROM :"t" WHERE ended_at <= :'reset_due';
VACUUM (INDEX_CLEANUP ON) :"t";
-- in a session of its own, kept for the run: setting
-- session_replication_role flushes the session's plan cache, which a
-- restore in another session does not do to the sweeper's
SELECT NOT coalesce('nightly_reset' = ANY (dblink_get_connections()), false) AS reset_connect \gset
\if :reset_connect
SELECT dblink_connect('nightly_reset',
					  format('dbname=%s host=%s port=%s user=%s', current_database(),
							 split_part(current_setting('unix_socket_directories'), ',', 1),
							 current_setting('port'), current_user)) AS reset_connected \gset
\endif
SELECT dblink_exec('nightly_reset',
				   format('BEGIN; SET LOCAL session_replication_role = replica; '
						  'INSERT INTO %I SELECT * FROM %I WHERE ended_at <= %L; COMMIT',
						  :'t', :'t_due', :'reset_due')) AS reset_insert \gset
UPDATE retention.sweep_mark SET swept_cutoff = :'t0'::timestamptz + interval '1 year' - interval '1 hour',
	   requested_at = NULL, reason = NULL
 WHERE root = :'t'::regclass;
DELETE FROM :"t_base" WHERE ended_at <= (SELECT max(ended_at) FROM :"t_due");
VACUUM (INDEX_CLEANUP ON) :"t_base";
INSERT INTO :"t_base" SELECT * FROM :"t_due";
VACUUM (FREEZE) :"t_base";
VACUUM (FREEZE) :"t";
RESET client_min_messages;
CHECKPOINT;
