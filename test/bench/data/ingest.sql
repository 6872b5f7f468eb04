-- test/bench/data/ingest.sql: a CDR file as a switch sends it, and two
-- empty tables to load it into, for the ingest benchmarks.
--
-- Set before `\ir data/ingest.sql`:
--   :ingest_prefix        names: PREFIX_plain, PREFIX_prot, file PREFIX.csv
--   :ingest_extra_column  true: also a SIP call id, a column kept for no
--                         purpose (retention.ident), which every completed
--                         row has erased as it is written
-- Sets :ingest_file (the CSV, in :bench_tmp) and :ingest_fully_due (how
-- many of its CDRs are older than a year).
--
-- The file: :rows CDRs, relative to the moment it is written, in the order
-- a switch writes them:
--   98%  completed in the last 24 hours (nothing due)
--    1%  in progress (ended_at empty: nothing due)
--    1%  late, completed 1 to 450 days ago (and half a day): about a fifth
--        of them older than a year, fully due, which the expiry trigger of
--        a table protected with on_expiry 'delete' deletes as they come
--
-- PREFIX_plain has plain text columns and no protection; PREFIX_prot the
-- same columns purpose-tagged, protected with on_expiry 'delete'.  Both
-- have a primary key on id, nothing else.

\set ingest_plain :ingest_prefix '_plain'
\set ingest_prot :ingest_prefix '_prot'
\set ingest_file :bench_tmp '/' :ingest_prefix '.csv'

DROP TABLE IF EXISTS :"ingest_plain", :"ingest_prot";
CREATE TABLE :"ingest_plain" (
	id			bigint PRIMARY KEY,
	caller		text,
	callee		text,
	imsi		text,
	imei		text,
	cell		text,
	started_at	timestamptz NOT NULL,
	ended_at	timestamptz,
	duration_s	integer
);
CREATE TABLE :"ingest_prot" (
	id			bigint PRIMARY KEY,
	caller		retention.msisdn(billing, law_enforcement),
	callee		retention.msisdn(billing),
	imsi		retention.imsi(law_enforcement),
	imei		retention.imei(law_enforcement),
	cell		retention.cell(law_enforcement, network_security),
	started_at	timestamptz NOT NULL,
	ended_at	timestamptz,
	duration_s	integer
);
\if :ingest_extra_column
ALTER TABLE :"ingest_plain" ADD COLUMN sip_call_id text;
ALTER TABLE :"ingest_prot" ADD COLUMN sip_call_id retention.ident;
\endif
SELECT retention.protect(:'ingest_prot', ended_at => 'ended_at', subscriber => 'caller',
						 on_expiry => 'delete');

-- 1000 devices with valid IMEIs
CREATE TEMP TABLE ingest_device AS
SELECT n, bench.luhn('35' || lpad((n * 7919)::text, 12, '0')) AS imei
  FROM generate_series(0, 999) n;

CREATE TEMP TABLE ingest_cdr AS
SELECT i AS id,
	   '336' || lpad(k::text, 8, '0') AS caller,
	   '336' || lpad((abs(hashint8(-i)) % 300000)::text, 8, '0') AS callee,
	   '20801' || lpad(k::text, 10, '0') AS imsi,
	   d.imei,
	   '208-01-' || (k % 500 + 1) || '-' || abs(hashint8(i + 1)) % 65536 AS cell,
	   ended - dur * interval '1 second' AS started_at,
	   CASE WHEN kind = 'in progress' THEN NULL ELSE ended END AS ended_at,
	   CASE WHEN kind = 'in progress' THEN NULL ELSE dur END AS duration_s,
	   md5(i::text) || '@ims.example.net' AS sip_call_id
  FROM generate_series(1, :rows) i
	   CROSS JOIN LATERAL (SELECT abs(hashint8(i)) % 100000 AS k,
								  (abs(hashint8(i + 2)) % 900)::integer AS dur,
								  CASE WHEN abs(hashint8(i + 3)) % 100 = 0 THEN 'in progress'
									   WHEN abs(hashint8(i + 3)) % 100 = 1 THEN 'late'
									   ELSE 'recent' END AS kind) x
	   CROSS JOIN LATERAL (SELECT CASE WHEN kind = 'late'
									   THEN now() - (abs(hashint8(i + 4)) % 450 + 1) * interval '1 day'
											- interval '12 hours'
									   ELSE now() - interval '1 day' + (i * 86400.0 / :rows) * interval '1 second'
								  END AS ended) e
	   JOIN ingest_device d ON d.n = x.k % 1000;

SELECT count(*) FILTER (WHERE ended_at <= now() - interval '1 year') AS ingest_fully_due,
	   count(*) FILTER (WHERE ended_at IS NULL) AS ingest_in_progress,
	   count(*) AS ingest_rows
  FROM ingest_cdr \gset
\echo ingest file: :ingest_rows CDRs, :ingest_in_progress in progress, :ingest_fully_due fully due

\if :ingest_extra_column
COPY (SELECT id, caller, callee, imsi, imei, cell, started_at, ended_at, duration_s, sip_call_id
		FROM ingest_cdr ORDER BY id) TO :'ingest_file' (FORMAT csv);
\else
COPY (SELECT id, caller, callee, imsi, imei, cell, started_at, ended_at, duration_s
		FROM ingest_cdr ORDER BY id) TO :'ingest_file' (FORMAT csv);
\endif
DROP TABLE ingest_cdr, ingest_device;
