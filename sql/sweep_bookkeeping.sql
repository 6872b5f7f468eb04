--
-- The sweep's bookkeeping in fewer statements (issue 16): its first log row
-- of a table carries the regime and the cutoffs itself (the sweep_log
-- trigger fires only for rows inserted otherwise), marks an earlier run's
-- row interrupted; the final row, the leaves' marks and the audit entry are
-- written together, in batches of any size.
--
\set SHOW_CONTEXT never
SET search_path = public;

CREATE TABLE book_cdr (
	id			integer PRIMARY KEY,
	caller		retention.msisdn(billing, law_enforcement),
	ended_at	timestamptz
);
CREATE INDEX ON book_cdr (ended_at);
-- history written before protection: 5 rows two years old, 5 of yesterday
INSERT INTO book_cdr
SELECT i, '336' || lpad(i::text, 8, '0'),
	   now() - CASE WHEN i <= 5 THEN interval '2 years' ELSE interval '1 day' END - i * interval '1 minute'
  FROM generate_series(1, 10) i;
SELECT retention.protect('book_cdr', 'ended_at', subscriber => 'caller');

-- the trigger fires only for a 'running' row inserted without cutoffs
SELECT pg_catalog.pg_get_triggerdef(t.oid) FROM pg_catalog.pg_trigger t
 WHERE t.tgrelid = 'retention.sweep_log'::regclass AND t.tgname = 'sweep_log_rules';

-- a run that left its row 'running' (a crash)
INSERT INTO retention.sweep_log (run_id, relid, started_at, cutoff, status, run_by)
VALUES (0, 'book_cdr'::regclass, now() - interval '1 day', now() - interval '1 day', 'running', 'test')
RETURNING id AS crashed_id, regime IS NOT NULL AS crashed_regime,
		  cutoffs = retention._cutoffs(cutoff) AS crashed_cutoffs_by_trigger \gset
SELECT :'crashed_regime' AS crashed_regime, :'crashed_cutoffs_by_trigger' AS crashed_cutoffs_by_trigger;

SELECT coalesce(max(id), 0) AS audit0 FROM retention.audit_log \gset
SET client_min_messages = warning;
CALL retention.sweep('book_cdr', batch_size => 2);
RESET client_min_messages;

-- the crashed run's row, interrupted
SELECT status, error FROM retention.sweep_log WHERE id = :crashed_id;
-- this run's row: its counts, the regime and the cutoffs of its moment,
-- as the engine computes them
SELECT l.status, l.phase, l.rows_deleted, l.rows_anonymized, l.rows_scanned, l.rows_estimate > 0 AS estimated,
	   l.regime = retention.regime_in_force() AS regime_in_force,
	   l.cutoffs = retention._cutoffs(l.cutoff) AS cutoffs_of_its_moment,
	   l.finished_at >= l.started_at AS finished
  FROM retention.sweep_log l WHERE l.relid = 'book_cdr'::regclass ORDER BY l.id DESC LIMIT 1;
SELECT count(*) AS rows_left FROM book_cdr;
-- the leaf's mark, at the run's cutoff
SELECT m.swept_cutoff = l.cutoff AS marked_at_cutoff, m.requested_at, m.signature IS NOT NULL AS has_signature
  FROM retention.sweep_mark m,
	   LATERAL (SELECT cutoff FROM retention.sweep_log WHERE relid = 'book_cdr'::regclass ORDER BY id DESC LIMIT 1) l
 WHERE m.relid = 'book_cdr'::regclass;
-- one audit entry, with the run's counts, in the hash chain
SELECT a.action, a.object, a.details - 'cutoff' - 'run' AS details,
	   (a.details->>'run')::bigint = l.run_id AS its_run,
	   (a.details->>'cutoff')::timestamptz = l.cutoff AS its_cutoff
  FROM retention.audit_log a,
	   LATERAL (SELECT run_id, cutoff FROM retention.sweep_log WHERE relid = 'book_cdr'::regclass ORDER BY id DESC LIMIT 1) l
 WHERE a.id > :audit0;
SELECT valid, problem FROM retention.verify_audit_log();

-- a run with nothing due: the same bookkeeping
SET client_min_messages = warning;
CALL retention.sweep('book_cdr');
RESET client_min_messages;
SELECT l.status, l.rows_deleted, l.cutoffs = retention._cutoffs(l.cutoff) AS cutoffs_of_its_moment
  FROM retention.sweep_log l WHERE l.relid = 'book_cdr'::regclass ORDER BY l.id DESC LIMIT 1;
SELECT count(*) AS audit_entries FROM retention.audit_log WHERE id > :audit0 AND action = 'sweep';
SELECT valid FROM retention.verify_audit_log();

-- a table not protected: the same error as before
CALL retention.sweep('pg_catalog.pg_class');
\echo :LAST_ERROR_SQLSTATE

SELECT retention.unprotect('book_cdr');
DROP TABLE book_cdr;
