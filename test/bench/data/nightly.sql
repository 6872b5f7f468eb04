-- test/bench/data/nightly.sql: the nightly sweep's data sets (issue 16).
--
-- A year of CDRs, in time order as a switch writes them, of which the
-- oldest day (1/365, 0.27 %) is due: ended_at runs from a year and a day
-- ago to a day ago.  Built once per run and reused by every nightly
-- benchmark and across their rounds:
--
--   nightly_src          16 x :rows CDRs (purpose-tagged, no index): the source
--   nightly_meta         t0, the first CDR's end, and n, the source's rows
--
-- and, for the benchmark that includes this file with psql variables
--   :mult    1, 4 or 16: the table holds :mult x :rows CDRs (every
--            16/:mult-th CDR of the source: the same year, thinner)
--   :layout  plain, shuffled (plain, the rows in random order: the due ones
--            all over the heap), monthly or daily (range partitions of
--            ended_at)
--   :mode    delete or anonymize (on_expiry)
-- the protected table :t = nightly_:layout_:mode_:mult (indexes on id,
-- ended_at and caller), swept once (the sweep's first, full pass, which
-- leaves its marks), and :t_due, a saved copy of the rows due now or in
-- the next 3 hours, which @reset puts back (data/nightly_reset.sql), and
-- :t_base, the unprotected copy (same rows, same indexes) the hand-written
-- UPDATE or DELETE runs on: on :t it would fire the protected table's
-- triggers (the expiry trigger on UPDATE, the floors' on DELETE).

SELECT to_regclass('nightly_src') IS NULL AS nightly_missing \gset
\if :nightly_missing
\echo building the nightly data set (16 x :rows rows)
CREATE TABLE nightly_meta AS
SELECT now() - interval '1 year' - interval '1 day' AS t0, 16 * :rows::bigint AS n;
CREATE TEMP TABLE nightly_device AS
SELECT n, bench.luhn('35' || lpad((n * 7919)::text, 12, '0')) AS imei
  FROM generate_series(0, 999) n;
CREATE TABLE nightly_src (
	id			bigint NOT NULL,
	caller		retention.msisdn(billing, law_enforcement),
	callee		retention.msisdn(billing),
	imei		retention.imei(law_enforcement),
	cell		retention.cell(law_enforcement, network_security),
	started_at	timestamptz NOT NULL,
	ended_at	timestamptz,
	duration_s	integer
);
INSERT INTO nightly_src
SELECT i,
	   '336' || lpad(k::text, 8, '0'),
	   '336' || lpad((abs(hashint8(-i)) % (m.n / 10 * 3))::text, 8, '0'),
	   d.imei,
	   '208-01-' || (k % 500 + 1) || '-' || abs(hashint8(i + 1)) % 65536,
	   e - dur * interval '1 second', e, dur
  FROM nightly_meta m
 CROSS JOIN LATERAL generate_series(1, m.n) i
 CROSS JOIN LATERAL (SELECT abs(hashint8(i)) % (m.n / 10) AS k,
							(abs(hashint8(i + 2)) % 900)::integer AS dur,
							m.t0 + ((i - 0.5) * 31536000.0 / m.n) * interval '1 second' AS e) x
  JOIN nightly_device d ON d.n = x.k % 1000;
\endif

SELECT 'nightly_' || :'layout' || '_' || :'mode' || '_' || :'mult' AS t,
	   'nightly_' || :'layout' || '_' || :'mode' || '_' || :'mult' || '_due' AS t_due,
	   'nightly_' || :'layout' || '_' || :'mode' || '_' || :'mult' || '_base' AS t_base,
	   t0 FROM nightly_meta \gset
SELECT to_regclass(:'t') IS NULL AS t_missing, :'mode' = 'anonymize' AS anonymize \gset
\if :t_missing
\echo building :t
SELECT :'layout' IN ('plain', 'shuffled') AS plain, :'layout' = 'daily' AS daily \gset
\if :plain
CREATE TABLE :"t" (LIKE nightly_src);
\else
CREATE TABLE :"t" (LIKE nightly_src) PARTITION BY RANGE (ended_at);
SELECT format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
			  :'t' || '_' || k, :'t', :'t0'::timestamptz + k * step, :'t0'::timestamptz + (k + 1) * step)
  FROM (SELECT CASE WHEN :'daily'::boolean THEN interval '1 day' ELSE interval '1 month' END AS step,
			   CASE WHEN :'daily'::boolean THEN 366 ELSE 13 END AS parts) s,
	   generate_series(0, parts - 1) k \gexec
SELECT format('CREATE TABLE %I PARTITION OF %I DEFAULT', :'t' || '_open', :'t') \gexec
\endif
-- shuffled: the same rows in no order, the due ones all over the heap
INSERT INTO :"t" SELECT * FROM nightly_src WHERE id % (16 / :mult) = 0
 ORDER BY CASE WHEN :'layout' = 'shuffled' THEN hashint8(id) ELSE id END;
CREATE INDEX ON :"t" (id);
CREATE INDEX ON :"t" (ended_at);
CREATE INDEX ON :"t" (caller);
-- the hand-written statement's table: an unprotected copy, same rows, same
-- indexes (protected tables have a BEFORE DELETE trigger, the floors')
CREATE TABLE :"t_base" (LIKE :"t" INCLUDING INDEXES);
INSERT INTO :"t_base" SELECT * FROM :"t";
VACUUM (FREEZE, ANALYZE) :"t_base";
SELECT retention.protect(:'t', ended_at => 'ended_at', subscriber => 'caller', on_expiry => :'mode');
CREATE TABLE :"t_due" AS
SELECT * FROM :"t" WHERE ended_at <= now() - interval '1 year' + interval '3 hours';
VACUUM (FREEZE, ANALYZE) :"t";
-- the first sweep: a full pass, which leaves the leaves' marks
SET client_min_messages = warning;
CALL retention.sweep(:'t');
RESET client_min_messages;
SELECT count(*) AS due_rows, (SELECT count(*) FROM :"t") AS table_rows,
	   (SELECT count(*) FROM pg_partition_tree(:'t') WHERE isleaf) AS leaves
  FROM :"t_due";
\endif
