--
-- The sweep visits what is due, not what is kept (issue 16): batches by the
-- ended_at index, a mark per leaf so that the next run visits only the rows
-- that fell due since, the events that make rows due otherwise (each asks
-- for a full pass), partitions skipped by their bound, report()'s warning.
--
\set SHOW_CONTEXT never
SET search_path = public;
-- written for 1.0's rules: regime fr-2004 (sql/regimes.sql tests fr-2025's
-- events: a location consent suspended, the regime switched)
SELECT count(*) >= 0 AS fr_2004 FROM retention.set_regime('fr-2004');
SELECT coalesce(max(id), 0) AS sweep0 FROM retention.sweep_log \gset

CREATE TABLE due_cdr (
	id			integer PRIMARY KEY,
	caller		retention.msisdn(billing, law_enforcement),
	cell		retention.cell(law_enforcement, network_security),
	ended_at	timestamptz
);
CREATE INDEX ON due_cdr (ended_at);
-- history written before protection: 10 rows two years old, 10 eight
-- months old (cell kept for law enforcement, a year), 10 of yesterday;
-- rows 31-40 all end at the same moment, two years ago
INSERT INTO due_cdr
SELECT i, '336' || lpad(i::text, 8, '0'), '208-01-1-' || i,
	   now() - CASE WHEN i <= 10 THEN interval '2 years' WHEN i <= 20 THEN interval '8 months'
					ELSE interval '1 day' END - i * interval '1 minute'
  FROM generate_series(1, 30) i;
INSERT INTO due_cdr
SELECT i, '336' || lpad(i::text, 8, '0'), '208-01-1-' || i, date_trunc('day', now()) - interval '2 years'
  FROM generate_series(31, 40) i;
SELECT retention.protect('due_cdr', 'ended_at', subscriber => 'caller');

-- the first sweep: a full pass, driven by the index in batches of 3 (ties
-- with a batch's last row go with it), which leaves the leaf's mark
SET client_min_messages = warning;
CALL retention.sweep('due_cdr', batch_size => 3);
RESET client_min_messages;
SELECT rows_deleted, rows_anonymized, rows_scanned, status
  FROM retention.sweep_log WHERE relid = 'due_cdr'::regclass ORDER BY id DESC LIMIT 1;
SELECT count(*) AS rows_left, min(id) AS first_left FROM due_cdr;
SELECT m.relid, m.root, m.swept_cutoff = l.cutoff AS marked_at_cutoff, m.requested_at, m.reason,
	   m.signature IS NOT NULL AS has_signature
  FROM retention.sweep_mark m, LATERAL (SELECT cutoff FROM retention.sweep_log
										 WHERE relid = 'due_cdr'::regclass ORDER BY id DESC LIMIT 1) l
 WHERE m.root = 'due_cdr'::regclass;

-- the next sweep visits only the rows that fell due since the mark: none
SET client_min_messages = warning;
CALL retention.sweep('due_cdr');
RESET client_min_messages;
SELECT rows_deleted, rows_scanned FROM retention.sweep_log
 WHERE relid = 'due_cdr'::regclass ORDER BY id DESC LIMIT 1;

-- a row stored as written (replica mode: a restore, history) below the
-- mark asks for a full pass, which finds it
SET session_replication_role = replica;
INSERT INTO due_cdr VALUES (50, '33600000050', '208-01-1-50', now() - interval '3 years');
RESET session_replication_role;
SELECT requested_at IS NOT NULL AS requested, reason FROM retention.sweep_mark WHERE relid = 'due_cdr'::regclass;
SET client_min_messages = warning;
CALL retention.sweep('due_cdr');
RESET client_min_messages;
SELECT count(*) AS row_50_left FROM due_cdr WHERE id = 50;
SELECT requested_at, reason FROM retention.sweep_mark WHERE relid = 'due_cdr'::regclass;

-- a hold keeps a due row; releasing it asks for a full pass, which
-- removes it (without the request the next sweep would not look there)
SET session_replication_role = replica;
INSERT INTO due_cdr VALUES (51, '33600000051', '208-01-1-51', now() - interval '3 years');
RESET session_replication_role;
SELECT retention.hold('due_cdr', '33600000051', now() - interval '4 years', now(),
					  'judicial_request', 'PV-16', until => now() + interval '1 month') AS hold_id \gset
SET client_min_messages = warning;
CALL retention.sweep('due_cdr');
CALL retention.sweep('due_cdr');
RESET client_min_messages;
SELECT count(*) AS held_row_left FROM due_cdr WHERE id = 51;
SELECT rows_held, rows_scanned FROM retention.sweep_log WHERE relid = 'due_cdr'::regclass ORDER BY id DESC LIMIT 2;
SELECT requested_at IS NULL AS no_request FROM retention.sweep_mark WHERE relid = 'due_cdr'::regclass;
SELECT retention.release(:hold_id, 'case closed');
SELECT reason = 'hold ' || :hold_id || ' released' AS asked_by_release
  FROM retention.sweep_mark WHERE relid = 'due_cdr'::regclass;
SET client_min_messages = warning;
CALL retention.sweep('due_cdr');
RESET client_min_messages;
SELECT count(*) AS released_row_left FROM due_cdr WHERE id = 51;

-- a hold with an end: the mark says when its rows fall due again
SET session_replication_role = replica;
INSERT INTO due_cdr VALUES (52, '33600000052', '208-01-1-52', now() - interval '3 years');
RESET session_replication_role;
SELECT retention.hold('due_cdr', '33600000052', now() - interval '4 years', now(),
					  'quick_freeze', 'QF-16', until => now() + interval '10 days', authority => 'TJ Paris') AS hold_id \gset
SET client_min_messages = warning;
CALL retention.sweep('due_cdr');
RESET client_min_messages;
SELECT m.full_pass_after = h.until AS full_pass_when_hold_ends
  FROM retention.sweep_mark m, retention.hold h
 WHERE m.relid = 'due_cdr'::regclass AND h.id = :hold_id;
SELECT retention.release(:hold_id);

-- a window shortened makes rows due that time alone did not: the rules'
-- change asks for a full pass, which anonymizes the 8-month-old cells
SELECT count(cell) AS cells_before FROM due_cdr WHERE id BETWEEN 11 AND 20;
SELECT retention.set_window('law_enforcement', '6 months');
SELECT reason FROM retention.sweep_mark WHERE relid = 'due_cdr'::regclass;
SET client_min_messages = warning;
CALL retention.sweep('due_cdr');
RESET client_min_messages;
SELECT count(cell) AS cells_after, count(caller) AS callers_after FROM due_cdr WHERE id BETWEEN 11 AND 20;
SELECT retention.set_window('law_enforcement', '1 year');

-- asked for by hand (the coming set_regime() does): the next sweep is a
-- full pass, and clears the request
SELECT retention.request_full_sweep('due_cdr', 'regime switched');
SELECT reason FROM retention.sweep_mark WHERE relid = 'due_cdr'::regclass;
SET client_min_messages = warning;
CALL retention.sweep('due_cdr');
RESET client_min_messages;
SELECT requested_at, reason FROM retention.sweep_mark WHERE relid = 'due_cdr'::regclass;
-- only for protected tables; and only retention_admin may ask
CREATE TABLE due_plain (id integer);
SELECT retention.request_full_sweep('due_plain');
\echo :LAST_ERROR_SQLSTATE
CREATE ROLE regress_due_nobody;
SET ROLE regress_due_nobody;
SELECT retention.request_full_sweep('due_cdr');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_due_nobody;

-- a consent withdrawn asks for a full pass of the tables kept for marketing
CREATE TABLE due_mk (id integer, caller retention.msisdn(billing), promo retention.cell(marketing),
					 ended_at timestamptz);
SELECT retention.protect('due_mk', 'ended_at', subscriber => 'caller');
SET client_min_messages = warning;
CALL retention.sweep();
RESET client_min_messages;
SELECT retention.grant_consent('33600000099', now() + interval '6 months', now() + interval '1 year');
SELECT retention.withdraw_consent('33600000099');
SELECT relid, reason FROM retention.sweep_mark WHERE relid IN ('due_mk'::regclass, 'due_cdr'::regclass)
 ORDER BY relid::text;

-- unprotected, protected again: the table's marks go
SELECT retention.unprotect('due_mk');
SELECT count(*) AS marks_left FROM retention.sweep_mark WHERE root = 'due_mk'::regclass;

-- partitions: one wholly due (the fast path), one that straddles the
-- deadline, and one of next year's, which the sweep does not read at all
CREATE TABLE due_p (caller retention.msisdn(law_enforcement), ended_at timestamptz) PARTITION BY RANGE (ended_at);
CREATE INDEX ON due_p (ended_at);
CREATE TABLE due_p_old PARTITION OF due_p FOR VALUES FROM ('2000-01-01') TO (now() - interval '500 days');
CREATE TABLE due_p_mid PARTITION OF due_p FOR VALUES FROM (now() - interval '500 days') TO (now() + interval '1 day');
CREATE TABLE due_p_next PARTITION OF due_p FOR VALUES FROM (now() + interval '1 day') TO (now() + interval '1 year');
INSERT INTO due_p_old SELECT '33611111111', now() - interval '600 days' FROM generate_series(1, 5);
INSERT INTO due_p_mid SELECT '33611111111', now() - d * interval '100 days' FROM generate_series(1, 4) d;
SELECT retention.protect('due_p', 'ended_at');
SELECT pg_stat_force_next_flush();
SELECT seq_scan + coalesce(idx_scan, 0) AS next_scans_before FROM pg_stat_user_tables
 WHERE relid = 'due_p_next'::regclass \gset
SET client_min_messages = warning;
CALL retention.sweep('due_p');
RESET client_min_messages;
SELECT pg_stat_force_next_flush();
SELECT pg_stat_clear_snapshot();
SELECT seq_scan + coalesce(idx_scan, 0) - :next_scans_before AS next_year_scans
  FROM pg_stat_user_tables WHERE relid = 'due_p_next'::regclass;
SELECT rows_deleted, partitions_truncated FROM retention.sweep_log
 WHERE relid = 'due_p'::regclass ORDER BY id DESC LIMIT 1;
SELECT m.relid FROM retention.sweep_mark m WHERE m.root = 'due_p'::regclass ORDER BY m.relid::text;
SELECT tableoid::regclass, count(*) FROM due_p GROUP BY 1 ORDER BY tableoid::regclass::text;

-- a table without an index on ended_at, timestamp without time zone: the
-- sweep walks its blocks (with the same marks)
CREATE TABLE due_ts (id integer, caller retention.msisdn(law_enforcement), ended_at timestamp);
INSERT INTO due_ts SELECT i, '33611111111', localtimestamp - interval '2 years' FROM generate_series(1, 5) i;
INSERT INTO due_ts SELECT i, '33611111111', localtimestamp - interval '2 days' FROM generate_series(6, 8) i;
SELECT retention.protect('due_ts', 'ended_at');
SET client_min_messages = warning;
CALL retention.sweep('due_ts', batch_size => 2);
RESET client_min_messages;
SELECT count(*) AS ts_left FROM due_ts;
SELECT swept_cutoff IS NOT NULL AS marked FROM retention.sweep_mark WHERE relid = 'due_ts'::regclass;

-- protect() and report() say when the sweep would read more than what is
-- due: a table over 1 MB without an index on ended_at
CREATE TABLE due_big (id integer, caller retention.msisdn(law_enforcement), ended_at timestamptz,
					  note text);
INSERT INTO due_big SELECT i, '33611111111', now() - interval '1 day', repeat('x', 100)
  FROM generate_series(1, 12000) i;
SELECT retention.protect('due_big', 'ended_at');
SELECT "table", kind, note FROM retention.report() WHERE kind = 'slow sweep' ORDER BY "table"::text;
CREATE INDEX ON due_big USING brin (ended_at);
SELECT count(*) AS slow_after_brin FROM retention.report() WHERE kind = 'slow sweep';

SELECT retention.unprotect('due_big');
SELECT retention.unprotect('due_ts');
SELECT retention.unprotect('due_p');
SELECT retention.unprotect('due_cdr');
DROP TABLE due_big, due_ts, due_p, due_cdr, due_mk, due_plain;
SELECT count(*) AS marks_left FROM retention.sweep_mark;
SELECT count(*) >= 0 AS fr_2025 FROM retention.set_regime('fr-2025');
