-- test/bench/data/nightly_report.sql: in a nightly benchmark's @teardown
-- (issue 16), what its log shows besides the times:
--   - both sides removed every due row, and the same rows;
--   - buffers: the hand-written statement's EXPLAIN (ANALYZE, BUFFERS), and
--     for both it and the sweep the heap and index blocks read and hit, from
--     pg_statio_user_tables over the table's leaves;
--   - the sweeping backend's private memory (RssAnon of /proc/self/status,
--     which leaves shared buffers out) before and after a sweep, at the
--     default batch size and at batch_size => 1000.
\set statio 'SELECT sum(heap_blks_read) AS hr, sum(heap_blks_hit) AS hh, sum(idx_blks_read) AS ir, sum(idx_blks_hit) AS ih FROM pg_statio_user_tables WHERE relid IN (SELECT relid FROM pg_partition_tree(' :'t' ') UNION SELECT ' :'t' '::regclass)'
\set statio_base 'SELECT sum(heap_blks_read) AS hr, sum(heap_blks_hit) AS hh, sum(idx_blks_read) AS ir, sum(idx_blks_hit) AS ih FROM pg_statio_user_tables WHERE relid IN (SELECT relid FROM pg_partition_tree(' :'t_base' ') UNION SELECT ' :'t_base' '::regclass)'
\set rss 'SELECT (regexp_match(pg_read_file(''/proc/self/status''), ''RssAnon:\\s+(\\d+)''))[1]::bigint AS'
\set flush 'SELECT pg_stat_force_next_flush()'
\set due_now 'SELECT count(*) AS due FROM ' :"t" ' WHERE ended_at <= now() - interval ''1 year'''

\ir nightly_reset.sql
:flush;
SELECT pg_stat_clear_snapshot();
:statio_base \gset b_
\if :anonymize
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF)
UPDATE :"t_base" SET caller = NULL, callee = NULL, imei = NULL, cell = NULL,
	   started_at = date_trunc('hour', started_at, 'UTC'), ended_at = date_trunc('hour', ended_at, 'UTC')
 WHERE ended_at <= now() - interval '1 year';
\else
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF)
DELETE FROM :"t_base" WHERE ended_at <= now() - interval '1 year';
\endif
:flush;
SELECT pg_stat_clear_snapshot();
:statio_base \gset a_
SELECT :a_hr - :b_hr AS d_hr, :a_hh - :b_hh AS d_hh, :a_ir - :b_ir AS d_ir, :a_ih - :b_ih AS d_ih \gset
\echo BUFFERS hand-written statement: heap blocks read :d_hr hit :d_hh, index blocks read :d_ir hit :d_ih

\ir nightly_reset.sql
:due_now \gset
:flush;
SELECT pg_stat_clear_snapshot();
:statio \gset b_
:rss rss_before \gset
SET client_min_messages = warning;
CALL retention.sweep(:'t');
RESET client_min_messages;
:rss rss_after \gset
:flush;
SELECT pg_stat_clear_snapshot();
:statio \gset a_
SELECT :a_hr - :b_hr AS d_hr, :a_hh - :b_hh AS d_hh, :a_ir - :b_ir AS d_ir, :a_ih - :b_ih AS d_ih \gset
\echo BUFFERS sweep: heap blocks read :d_hr hit :d_hh, index blocks read :d_ir hit :d_ih
SELECT rows_scanned, rows_deleted, rows_anonymized, rows_skipped, partitions_truncated, rows_estimate,
	   finished_at - started_at AS took
  FROM retention.sweep_log WHERE relid = :'t'::regclass ORDER BY id DESC LIMIT 1;
SELECT rows_deleted + rows_anonymized + (SELECT count(*) FROM :"t" WHERE ended_at <= now() - interval '1 year'
										  AND num_nonnulls(caller, callee, imei, cell) > 0) AS done_or_left
  FROM retention.sweep_log WHERE relid = :'t'::regclass ORDER BY id DESC LIMIT 1 \gset
SELECT :done_or_left >= :due AND NOT EXISTS (SELECT 1 FROM :"t" WHERE ended_at <= now() - interval '1 year'
											  AND num_nonnulls(caller, callee, imei, cell) > 0) AS all_done \gset
\echo due rows before the sweep: :due; rows in clear left: see all_done = :all_done
\if :all_done
\else
DO $$ BEGIN RAISE EXCEPTION 'the sweep left due rows behind'; END $$;
\endif
\echo MEMORY default batch size: RssAnon :rss_before kB before the sweep, :rss_after kB after

\ir nightly_reset.sql
:rss rss_before \gset
SET client_min_messages = warning;
CALL retention.sweep(:'t', batch_size => 1000);
RESET client_min_messages;
:rss rss_after \gset
\echo MEMORY batch_size 1000: RssAnon :rss_before kB before the sweep, :rss_after kB after
SELECT rows_scanned, rows_deleted, rows_anonymized, finished_at - started_at AS took
  FROM retention.sweep_log WHERE relid = :'t'::regclass ORDER BY id DESC LIMIT 1;
