--
-- The sweep (SPEC 3.8): everything that fell due after it was written
--
\set SHOW_CONTEXT never
SET search_path = public;
SELECT coalesce(max(id), 0) AS audit0 FROM retention.audit_log \gset
SELECT coalesce(max(id), 0) AS sweep0 FROM retention.sweep_log \gset

CREATE TABLE cdr (
	id			integer PRIMARY KEY,
	caller		retention.msisdn(billing, law_enforcement),
	cell		retention.cell(law_enforcement, network_security),
	netcell		retention.cell(network_security),
	ended_at	timestamptz
);
-- rows written before protection: the triggers never saw them
INSERT INTO cdr
SELECT i, '336' || lpad(i::text, 8, '0'), '208-01-1-' || i, '208-01-2-' || i,
	   CASE WHEN i % 10 = 0 THEN NULL ELSE now() - (i % 25) * interval '1 month' END
  FROM generate_series(1, 1000) i;
SELECT retention.protect('cdr', 'ended_at', subscriber => 'caller');

SELECT count(*) FILTER (WHERE ended_at IS NULL) AS in_progress,
	   count(*) FILTER (WHERE ended_at > now() - interval '3 months') AS in_window,
	   count(*) FILTER (WHERE ended_at <= now() - interval '3 months' AND ended_at > now() - interval '1 year') AS partly_due,
	   count(*) FILTER (WHERE ended_at <= now() - interval '1 year') AS fully_due
  FROM cdr;

-- a dry run says what it would do, and does nothing
CALL retention.sweep(dry_run => true);
SELECT count(*) AS rows, count(netcell) AS netcells FROM cdr;
SELECT count(*) AS logged FROM retention.sweep_log WHERE id > :sweep0;

-- the sweep, in small batches
SET client_min_messages = warning;
CALL retention.sweep(batch_size => 100);
RESET client_min_messages;
SELECT count(*) FILTER (WHERE ended_at IS NULL) AS in_progress,
	   count(*) FILTER (WHERE netcell IS NOT NULL) AS netcells,
	   count(*) FILTER (WHERE ended_at <= now() - interval '1 year') AS fully_due,
	   count(*) AS rows
  FROM cdr;
SELECT relid, status, rows_anonymized, rows_deleted, rows_held, rows_skipped,
	   partitions_truncated, cutoff <= started_at AS cutoff_fixed_at_start,
	   rows_scanned >= rows_estimate AS read_it_all, error
  FROM retention.sweep_log WHERE id > :sweep0;
SELECT action, object, details->>'anonymized' AS anonymized, details->>'deleted' AS deleted
  FROM retention.audit_log WHERE action = 'sweep' AND id > :audit0;
SELECT count(*) AS running FROM retention.sweep_progress;

-- a second sweep finds nothing left to do, and writes no row version
SELECT n_tup_upd + n_tup_del AS changes_before FROM pg_stat_xact_user_tables WHERE relid = 'cdr'::regclass \gset
SET client_min_messages = warning;
CALL retention.sweep('cdr');
RESET client_min_messages;
SELECT n_tup_upd + n_tup_del - :changes_before AS changes FROM pg_stat_xact_user_tables WHERE relid = 'cdr'::regclass;
SELECT rows_anonymized, rows_deleted FROM retention.sweep_log ORDER BY id DESC LIMIT 1;

-- methods at the deadline; hashed values go at the row's last deadline
CREATE TABLE cdr_m (caller retention.msisdn(billing), imei retention.imei(network_security),
					cell retention.cell(network_security), ended_at timestamptz);
INSERT INTO cdr_m VALUES ('33611111111', '490154203237518', '208-01-7-77', now() - interval '6 months'),
						 ('33622222222', '490154203237518', '208-01-7-77', now() - interval '2 years');
SELECT retention.protect('cdr_m', 'ended_at', on_expiry => 'anonymize');
SELECT retention.set_method('cdr_m', 'imei', 'hash');
SELECT retention.set_method('cdr_m', 'cell', 'generalize');
SET client_min_messages = warning;
CALL retention.sweep('cdr_m');
RESET client_min_messages;
SELECT caller, imei ~ '^~k[0-9]+:[0-9a-f]{24}$' AS imei_pseudonym, imei IS NULL AS imei_erased, cell,
	   date_trunc('hour', ended_at) = ended_at AS ended_at_to_the_hour
  FROM cdr_m ORDER BY caller NULLS LAST;

-- partitions: one wholly due is truncated at once; one that straddles the
-- deadline is swept row by row.  Bounds and rows are whole days before
-- now(), so that the counts do not depend on the date; no row is 365 days
-- old, the edge of a year in a leap year or not.
CREATE TABLE cdr_p (caller retention.msisdn(law_enforcement), ended_at timestamptz)
	PARTITION BY RANGE (ended_at);
CREATE TABLE cdr_p_old PARTITION OF cdr_p FOR VALUES FROM ('2000-01-01') TO (now() - interval '423 days');
CREATE TABLE cdr_p_mid PARTITION OF cdr_p FOR VALUES FROM (now() - interval '423 days') TO (now() - interval '211 days');
CREATE TABLE cdr_p_new PARTITION OF cdr_p FOR VALUES FROM (now() - interval '211 days') TO ('2100-01-01');
INSERT INTO cdr_p SELECT '33611111111', now() - i * interval '1 day' FROM generate_series(1, 900) i WHERE i <> 365;
ANALYZE cdr_p;
SELECT retention.protect('cdr_p', 'ended_at');
SELECT tableoid::regclass AS part, count(*) FROM cdr_p GROUP BY 1 ORDER BY 1;
SET client_min_messages = warning;
CALL retention.sweep('cdr_p');
RESET client_min_messages;
SELECT tableoid::regclass AS part, count(*), bool_and(ended_at > now() - interval '1 year') AS all_in_window
  FROM cdr_p GROUP BY 1 ORDER BY 1;
SELECT partitions_truncated, rows_deleted > 0 AS deleted FROM retention.sweep_log ORDER BY id DESC LIMIT 1;

-- an error in one table is logged; the other tables are still swept
CREATE TABLE cdr_stuck (id integer PRIMARY KEY, caller retention.msisdn(network_security), ended_at timestamptz);
INSERT INTO cdr_stuck VALUES (1, '33611111111', now() - interval '1 year');
CREATE TABLE stuck_ref (cdr_id integer REFERENCES cdr_stuck);
INSERT INTO stuck_ref VALUES (1);
SELECT retention.protect('cdr_stuck', 'ended_at');
INSERT INTO cdr VALUES (5000, '33650005000', '208-01-1-1', '208-01-1-1', now() - interval '2 years');
SELECT count(*) AS late_rows_before FROM cdr WHERE id = 5000;
SET session_replication_role = replica;
INSERT INTO cdr VALUES (5001, '33650005001', '208-01-1-1', '208-01-1-1', now() - interval '2 years');
RESET session_replication_role;
SET client_min_messages = warning;
CALL retention.sweep();
RESET client_min_messages;
SELECT relid, status, rows_deleted, error FROM retention.sweep_log
 WHERE run_id = (SELECT max(run_id) FROM retention.sweep_log) ORDER BY relid::text;
SELECT count(*) AS late_rows_after FROM cdr WHERE id = 5001;
DROP TABLE stuck_ref;

-- a run that died left its row 'running': progress does not show it (no
-- session holds its lock), and the next run says what became of it
INSERT INTO retention.sweep_log (run_id, relid, started_at, cutoff, status, run_by)
VALUES (0, 'cdr', now() - interval '1 day', now() - interval '1 day', 'running', 'crashed session');
SELECT count(*) AS running FROM retention.sweep_progress;
SET client_min_messages = warning;
CALL retention.sweep('cdr');
RESET client_min_messages;
SELECT status, error FROM retention.sweep_log WHERE run_id = 0;
-- the log prunes itself past retention.log_keep (13 months)
INSERT INTO retention.sweep_log (run_id, relid, started_at, cutoff, status, run_by)
VALUES (-1, 'cdr', now() - interval '14 months', now() - interval '14 months', 'done', 'long ago');
SET client_min_messages = warning;
CALL retention.sweep('cdr');
RESET client_min_messages;
SELECT count(*) AS pruned_rows_left FROM retention.sweep_log WHERE run_id = -1;

-- pacing: retention.max_wal_rate caps the WAL a sweep writes per second;
-- the sweep pauses row by row, and its log says for how long
CREATE TABLE cdr_paced (
	id			integer PRIMARY KEY,
	caller		retention.msisdn(billing, law_enforcement),
	cell		retention.cell(network_security),
	ended_at	timestamptz
);
INSERT INTO cdr_paced
SELECT i, '336' || lpad(i::text, 8, '0'), '208-01-1-' || i, now() - interval '6 months'
  FROM generate_series(1, 200) i;
SELECT retention.protect('cdr_paced', 'ended_at', subscriber => 'caller');
SET retention.max_wal_rate = '100kB';
SET client_min_messages = warning;
CALL retention.sweep('cdr_paced');
RESET client_min_messages;
SELECT status, rows_anonymized, paused > '0' AS paused FROM retention.sweep_log
 WHERE relid = 'cdr_paced'::regclass ORDER BY id;
SELECT count(cell) AS cells_left FROM cdr_paced;
-- no limit, no pause (the sweeps above)
SELECT count(*) FILTER (WHERE paused > '0') AS paused_unpaced FROM retention.sweep_log
 WHERE id > :sweep0 AND relid <> 'cdr_paced'::regclass;
-- a pause gives way to a cancel: the batch in flight rolls back whole, and
-- the next run marks the cut-short one interrupted
SET session_replication_role = replica;
UPDATE cdr_paced SET cell = '208-01-1-' || id;
RESET session_replication_role;
SET retention.max_wal_rate = '1kB';
SET statement_timeout = '500ms';
\set VERBOSITY terse
CALL retention.sweep('cdr_paced');
\set VERBOSITY default
RESET statement_timeout;
SELECT count(cell) AS cells_left FROM cdr_paced;
RESET retention.max_wal_rate;
SET client_min_messages = warning;
CALL retention.sweep('cdr_paced');
RESET client_min_messages;
SELECT status, rows_anonymized, paused > '0' AS paused FROM retention.sweep_log
 WHERE relid = 'cdr_paced'::regclass ORDER BY id;
-- the range, and the error PostgreSQL raises outside it (its wording varies
-- by release: only the SQLSTATE is shown)
SELECT min_val, max_val, unit FROM pg_settings WHERE name = 'retention.max_wal_rate';
\set VERBOSITY sqlstate
SET retention.max_wal_rate = -1;
\set VERBOSITY default

-- inside a transaction block the sweep cannot commit per batch
BEGIN;
CALL retention.sweep('cdr');
COMMIT;

-- errors
CALL retention.sweep('pg_class');
\echo :LAST_ERROR_SQLSTATE
CALL retention.sweep(batch_size => 0);
\echo :LAST_ERROR_SQLSTATE
CREATE ROLE regress_sweeper;
SET ROLE regress_sweeper;
CALL retention.sweep();
\echo :LAST_ERROR_SQLSTATE
SET retention.max_wal_rate = '1MB';
SELECT * FROM retention.sweep_log;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_sweeper;

SELECT retention.unprotect(relid) FROM retention.protected_table ORDER BY relid::text;
DROP TABLE cdr, cdr_m, cdr_p, cdr_stuck, cdr_paced;
TRUNCATE retention.write_log;
RESET search_path;
