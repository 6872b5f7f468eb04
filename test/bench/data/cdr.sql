-- test/bench/data/cdr.sql: the CDR data set shared by the benchmarks.
--
-- Include it from a benchmark's setup with `\ir data/cdr.sql`; it builds,
-- once per run, :rows CDRs of one year (2025, in time order, as a switch
-- writes them) in two tables holding byte for byte the same data:
--
--   cdr_text     identifier columns of type text
--   cdr_tagged   the same columns as purpose-tagged types
--   subscriber   :rows / 10 subscribers (msisdn text primary key, plan, name)
--
-- with the same indexes (id, started_at, caller), vacuumed, frozen and
-- analyzed.  Benchmarks read these tables; they do not change them (copy
-- them into your own tables to write).

SELECT to_regclass('cdr_tagged') IS NULL AS cdr_missing \gset
\if :cdr_missing
\echo building the CDR data set (:rows rows)

CREATE TABLE subscriber (
	msisdn		text PRIMARY KEY,
	plan		text NOT NULL,
	name		text NOT NULL
);
INSERT INTO subscriber
SELECT '336' || lpad(k::text, 8, '0'),
	   (ARRAY['prepaid', 'basic', 'family', 'pro'])[k % 4 + 1],
	   'subscriber ' || k
  FROM generate_series(0, greatest(:rows / 10, 100) - 1) k;

-- 1000 devices with valid IMEIs
CREATE TEMP TABLE device AS
SELECT n, bench.luhn('35' || lpad((n * 7919)::text, 12, '0')) AS imei
  FROM generate_series(0, 999) n;

CREATE TABLE cdr_text (
	id			bigint PRIMARY KEY,
	caller		text,
	callee		text,
	imei		text,
	cell		text,
	sip_call_id	text,
	started_at	timestamptz NOT NULL,
	ended_at	timestamptz,
	duration_s	integer
);

-- values in the types' normal forms, so that cdr_tagged stores the same bytes
INSERT INTO cdr_text
SELECT i,
	   '336' || lpad(k::text, 8, '0'),
	   '336' || lpad((abs(hashint8(-i)) % (greatest(:rows / 10, 100) * 3))::text, 8, '0'),
	   d.imei,
	   '208-01-' || (k % 500 + 1) || '-' || abs(hashint8(i + 1)) % 65536,
	   md5(i::text) || '@ims.example.net',
	   s, s + dur * interval '1 second', dur
  FROM generate_series(1, :rows) i
	   CROSS JOIN LATERAL (SELECT abs(hashint8(i)) % greatest(:rows / 10, 100) AS k,
								  (abs(hashint8(i + 2)) % 900)::integer AS dur,
								  timestamptz '2025-01-01 00:00 Europe/Paris'
								  + (i * 31536000.0 / :rows) * interval '1 second' AS s) x
	   JOIN device d ON d.n = x.k % 1000
 ORDER BY i;

CREATE TABLE cdr_tagged (
	id			bigint PRIMARY KEY,
	caller		retention.msisdn(billing, law_enforcement),
	callee		retention.msisdn(billing),
	imei		retention.imei(law_enforcement),
	cell		retention.cell(law_enforcement, network_security),
	sip_call_id	retention.ident,
	started_at	timestamptz NOT NULL,
	ended_at	timestamptz,
	duration_s	integer
);
-- through the assignment casts: every value validated
INSERT INTO cdr_tagged SELECT * FROM cdr_text ORDER BY id;

CREATE INDEX ON cdr_text (started_at);
CREATE INDEX ON cdr_text (caller);
CREATE INDEX ON cdr_tagged (started_at);
CREATE INDEX ON cdr_tagged (caller);

VACUUM (FREEZE, ANALYZE) subscriber, cdr_text, cdr_tagged;

-- the same data, the same sizes, or the comparison means nothing; and
-- tagged columns read as text without a conversion
DO $$
DECLARE
	differ	bigint;
BEGIN
	IF EXISTS (SELECT FROM unnest('{retention.msisdn, retention.imei, retention.cell,
									 retention.ident}'::regtype[]) t
				WHERE NOT EXISTS (SELECT FROM pg_cast
								   WHERE castsource = t AND casttarget = 'text'::regtype
									 AND castmethod = 'b' AND castcontext = 'i')) THEN
		RAISE EXCEPTION 'a tagged type lacks its implicit binary-coercible cast to text';
	END IF;
	SELECT count(*) INTO differ
	  FROM cdr_text t FULL JOIN cdr_tagged g USING (id)
	 WHERE (t.caller, t.callee, t.imei, t.cell, t.sip_call_id, t.started_at, t.ended_at, t.duration_s)
		   IS DISTINCT FROM
		   (g.caller::text, g.callee::text, g.imei::text, g.cell::text, g.sip_call_id::text,
			g.started_at, g.ended_at, g.duration_s);
	IF differ <> 0 THEN
		RAISE EXCEPTION 'cdr_text and cdr_tagged differ in % rows', differ;
	END IF;
	IF pg_table_size('cdr_text') <> pg_table_size('cdr_tagged')
	   OR pg_indexes_size('cdr_text') <> pg_indexes_size('cdr_tagged') THEN
		RAISE EXCEPTION 'cdr_text and cdr_tagged differ in size'
			USING DETAIL = format('Tables %s and %s, indexes %s and %s.',
								  pg_size_pretty(pg_table_size('cdr_text')),
								  pg_size_pretty(pg_table_size('cdr_tagged')),
								  pg_size_pretty(pg_indexes_size('cdr_text')),
								  pg_size_pretty(pg_indexes_size('cdr_tagged')));
	END IF;
END
$$;

SELECT pg_size_pretty(pg_table_size('cdr_text')) AS table_size,
	   pg_size_pretty(pg_indexes_size('cdr_text')) AS indexes_size;
\endif
