-- test/bench/data/due.sql: CDRs that are all due, for the sweep benchmarks.
--
-- Include it from a benchmark's setup, after `\ir data/cdr.sql`, with
-- `\ir data/due.sql`; it builds, once per run:
--
--   cdr_due   the :rows CDRs of cdr_tagged (purpose-tagged, 5 tagged
--             columns), moved back in time so that the newest ended 13
--             months ago: every value is past every window (the longest
--             is a year), every row fully due; in time order, frozen and
--             analyzed, with no index
--
-- Copy it into your own tables (an INSERT ... SELECT into text columns
-- needs no conversion); never change it.  Its rows are fully due at any
-- date the benchmarks run on.

SELECT to_regclass('cdr_due') IS NULL AS cdr_due_missing \gset
\if :cdr_due_missing
\echo building the due CDR data set (:rows rows)
CREATE TABLE cdr_due (LIKE cdr_tagged);
INSERT INTO cdr_due
SELECT id, caller, callee, imei, cell, sip_call_id,
	   started_at + shift, ended_at + shift, duration_s
  FROM cdr_tagged,
	   (SELECT date_trunc('hour', now() - interval '13 months') - max(ended_at) AS shift
		  FROM cdr_tagged) s
 ORDER BY id;
VACUUM (FREEZE, ANALYZE) cdr_due;
\endif
