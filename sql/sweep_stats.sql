--
-- A nightly sweep's batches cut by the statistics (issue 16): where every
-- row of a range of ended_at is due whole and the table's statistics saw
-- rows written after the range, the range is cut where its histogram puts
-- half a batch of rows, one DELETE per slice and no second walk of the
-- btree.  Everywhere else (no statistics, rows written since they were
-- taken, a full pass, statistics proved wrong by a slice of more than two
-- batches) the batches are the next batch_size rows read from the btree.
-- An AFTER ... FOR EACH STATEMENT trigger of the owner's records the rows
-- of each of the sweep's DELETEs.
--
\set SHOW_CONTEXT never
SET search_path = public;

CREATE TABLE st_cdr (
	id			integer PRIMARY KEY,
	caller		retention.msisdn(billing, law_enforcement),
	ended_at	timestamptz
);
CREATE INDEX ON st_cdr (ended_at);
SELECT retention.protect('st_cdr', 'ended_at', subscriber => 'caller');
CREATE TABLE st_batches (n bigint, at serial);
CREATE FUNCTION st_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.st_batches (n) SELECT count(*) FROM gone;
	RETURN NULL;
END
$$;
CREATE TRIGGER st_count AFTER DELETE ON st_cdr REFERENCING OLD TABLE AS gone
	FOR EACH STATEMENT EXECUTE FUNCTION st_count();

-- the due day: 400 rows a second apart, three years ago; the year since
-- holds 600 rows not due, the last of them an hour old
CREATE TABLE st_due AS
SELECT i AS id, '336' || lpad(i::text, 8, '0') AS caller,
	   date_trunc('day', now()) - interval '3 years' + i * interval '1 second' AS ended_at
  FROM generate_series(1, 400) i;
CREATE TABLE st_kept AS
SELECT 1000 + i AS id, '336' || lpad((1000 + i)::text, 8, '0') AS caller,
	   now() - interval '1 hour' - i * interval '10 minutes' AS ended_at
  FROM generate_series(1, 600) i;

-- st_reset(): the due rows back, as a restore writes them, and the mark
-- saying that the last sweep ran before they fell due, no full pass asked
CREATE FUNCTION st_reset() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	SET LOCAL session_replication_role = replica;
	DELETE FROM st_cdr WHERE id <= 1000;
	INSERT INTO st_cdr SELECT id, caller, ended_at FROM st_due;
	SET LOCAL session_replication_role = origin;
	UPDATE retention.sweep_mark
	   SET swept_cutoff = (SELECT min(ended_at) FROM st_due) - interval '1 minute' + interval '1 year',
		   requested_at = NULL, reason = NULL
	 WHERE relid = 'st_cdr'::regclass;
	TRUNCATE st_batches;
END
$$;
INSERT INTO st_cdr SELECT * FROM st_kept;
-- the first sweep, a full pass, leaves the mark
SET client_min_messages = warning;
CALL retention.sweep('st_cdr');
RESET client_min_messages;
SELECT count(*) AS marks FROM retention.sweep_mark WHERE relid = 'st_cdr'::regclass;
-- under fr-2004 and fr-2025 alike, a row three years old is due whole and
-- one of the last year is not: the range swept is the due day's
SELECT st_reset();

-- 1. statistics taken after the due rows were written, reaching past
-- them: slices of about 50 rows for a batch of 100, each one DELETE (the
-- range swept is two years long, its rows in its first 400 seconds: the
-- histogram, not the span, places the cuts)
ANALYZE st_cdr;
SET client_min_messages = warning;
CALL retention.sweep('st_cdr', batch_size => 100);
RESET client_min_messages;
SELECT count(*) BETWEEN 7 AND 10 AS about_8_statements, sum(n) AS deleted,
	   max(n) <= 70 AS each_about_half_a_batch
  FROM st_batches;
SELECT rows_deleted, rows_scanned, rows_skipped, status FROM retention.sweep_log
 WHERE relid = 'st_cdr'::regclass ORDER BY id DESC LIMIT 1;
SELECT count(*) AS due_left FROM st_cdr WHERE id <= 400;

-- 2. no statistics: the btree is walked, batches of exactly 100
SELECT st_reset();
DELETE FROM pg_statistic WHERE starelid = 'st_cdr'::regclass;
SET client_min_messages = warning;
CALL retention.sweep('st_cdr', batch_size => 100);
RESET client_min_messages;
SELECT array_agg(n ORDER BY at) AS batches FROM st_batches;

-- 3. statistics that end before the range: its rows were written after
-- they were taken (as a short window's are, between two ANALYZEs), and no
-- estimate counts them.  Walked.
SET session_replication_role = replica;
DELETE FROM st_cdr;
INSERT INTO st_cdr VALUES (2001, '33600002001', now() - interval '5 years');
RESET session_replication_role;
ANALYZE st_cdr;
SELECT st_reset();
INSERT INTO st_cdr SELECT * FROM st_kept;
SET client_min_messages = warning;
CALL retention.sweep('st_cdr', batch_size => 100);
RESET client_min_messages;
SELECT array_agg(n ORDER BY at) AS batches FROM st_batches;
DELETE FROM st_cdr WHERE id = 2001;

-- 4. statistics that undercount the range (taken when it held 40 of its
-- rows, the year after it already there): the first slice deletes more than
-- two batches, and the rest of the range is walked
SELECT st_reset();
SET session_replication_role = replica;
DELETE FROM st_cdr WHERE id <= 400;
INSERT INTO st_cdr SELECT id, caller, ended_at FROM st_due WHERE id % 10 = 0;
RESET session_replication_role;
ANALYZE st_cdr;
SELECT st_reset();
SET client_min_messages = warning;
CALL retention.sweep('st_cdr', batch_size => 20);
RESET client_min_messages;
SELECT (array_agg(n ORDER BY at))[1] > 40 AS first_slice_over_two_batches,
	   max(n) FILTER (WHERE at > (SELECT min(at) FROM st_batches)) AS largest_after,
	   sum(n) AS deleted
  FROM st_batches;
SELECT rows_deleted, rows_scanned, status FROM retention.sweep_log
 WHERE relid = 'st_cdr'::regclass ORDER BY id DESC LIMIT 1;

-- 5. a full pass asked for (a restore): walked, whatever the statistics
SELECT st_reset();
ANALYZE st_cdr;
SELECT retention.request_full_sweep('st_cdr', 'restored from backup');
SET client_min_messages = warning;
CALL retention.sweep('st_cdr', batch_size => 100);
RESET client_min_messages;
SELECT array_agg(n ORDER BY at) AS batches FROM st_batches;

-- 6. a hold on the table: the row test decides, the btree is walked
SELECT st_reset();
ANALYZE st_cdr;
SELECT retention.hold('st_cdr', '33600000001', now() - interval '4 years', now(),
					  'judicial_request', 'PV-ST', until => now() + interval '1 month') AS st_hold \gset
SET client_min_messages = warning;
CALL retention.sweep('st_cdr', batch_size => 100);
RESET client_min_messages;
SELECT array_agg(n ORDER BY at) AS batches FROM st_batches;
SELECT rows_deleted, rows_held FROM retention.sweep_log
 WHERE relid = 'st_cdr'::regclass ORDER BY id DESC LIMIT 1;
SELECT retention.release(:st_hold, 'closed');

DROP TABLE st_cdr, st_batches, st_due, st_kept;
DROP FUNCTION st_count(), st_reset();
