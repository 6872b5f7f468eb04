--
-- Purpose-tagged identifier types (SPEC 3.2)
--
\set SHOW_CONTEXT never
SET search_path = public;

-- msisdn: E.164, optional "+", 6 to 15 digits, stored as digits
SELECT '+33612345678'::retention.msisdn AS plus, '33612345678'::retention.msisdn AS digits,
	   '123456'::retention.msisdn AS shortest, '123456789012345'::retention.msisdn AS longest;
-- the empty value: nothing, what erasing leaves in a NOT NULL column
SELECT ''::retention.msisdn;
\echo :LAST_ERROR_SQLSTATE
SELECT '12345'::retention.msisdn;
SELECT '1234567890123456'::retention.msisdn;
SELECT '+33 6 12 34 56 78'::retention.msisdn;
SELECT '0033612345678x'::retention.msisdn;
SELECT '++33612345678'::retention.msisdn;
SELECT '3361234567é'::retention.msisdn;
SELECT NULL::retention.msisdn IS NULL AS null_stays_null;

-- imsi: 14 or 15 digits
SELECT '208011234567890'::retention.imsi, '20801123456789'::retention.imsi;
SELECT '2080112345678'::retention.imsi;
SELECT '2080112345678901'::retention.imsi;
SELECT '20801-123456789'::retention.imsi;

-- imei: 15 digits with a Luhn check digit, or a 16-digit IMEISV
SELECT '490154203237518'::retention.imei AS imei, '4901542032375101'::retention.imei AS imeisv;
SELECT '490154203237519'::retention.imei;
\echo :LAST_ERROR_SQLSTATE
SELECT '35209900176148'::retention.imei;
SELECT '35-209900-176148-1'::retention.imei;

-- cell: MCC-MNC-AREA-CELL for 2G/3G (LAC, CI), 4G (TAC, ECI) and 5G (TAC, NCI)
SELECT '208-01-1234-5678'::retention.cell AS gsm,
	   '208-010-0042-00123'::retention.cell AS leading_zeros,
	   '208-01-65534-268435455'::retention.cell AS ecgi,
	   '208-01-16777215-68719476735'::retention.cell AS ncgi;
SELECT '208-01-1234'::retention.cell AS area_only;		-- the generalized form
SELECT '208-01-1234-5678-9'::retention.cell;
SELECT '208-01'::retention.cell;
SELECT '20-01-1234-5678'::retention.cell;
SELECT '208-1-1234-5678'::retention.cell;
SELECT '208-01--5678'::retention.cell;
SELECT '208-01-16777216-1'::retention.cell;
SELECT '208-01-1-68719476736'::retention.cell;
SELECT '208-01-1-999999999999999999999'::retention.cell;
SELECT '208-01-12a4-5678'::retention.cell;
-- leading zeros never count against the range, however many (found by fuzzing)
SELECT '208-01-0000000000000042-000000000000068719476735'::retention.cell AS many_leading_zeros;
SELECT '208-01-0000000000016777216-1'::retention.cell;

-- ident: anything else (SIP URI, IP address, account id)
SELECT 'sip:+33612345678@ims.example.net'::retention.ident, '2001:db8::1'::retention.ident, ''::retention.ident;

-- anonymized forms are valid values of their type
SELECT '33612*'::retention.msisdn AS msisdn_generalized, '20801*'::retention.imsi AS imsi_generalized,
	   '49015420*'::retention.imei AS imei_generalized, '208-01-1234'::retention.cell AS cell_generalized;
SELECT '~k1:0123456789abcdef01234567'::retention.msisdn AS pseudonym,
	   '~k12:0123456789abcdef01234567'::retention.cell AS cell_pseudonym,
	   '~k1:0123456789abcdef01234567'::retention.ident AS ident_pseudonym;
SELECT '3361234567*'::retention.msisdn;
SELECT '2080*'::retention.imsi;
SELECT '4901542*'::retention.imei;
SELECT '~k1:0123456789ABCDEF01234567'::retention.msisdn;
SELECT '~k:0123456789abcdef01234567'::retention.imei;
SELECT '~k1:0123'::retention.imsi;
SELECT '~k01:0123456789abcdef01234567'::retention.msisdn;	-- one spelling per key

-- long values are refused without quoting them whole
SELECT repeat('1', 100000)::retention.msisdn;
SELECT length(repeat('x', 100000)::retention.ident) AS long_ident;
-- 1 MB: the same short error from every type and path, cut at a character
SELECT repeat('1', 1048576)::retention.msisdn;
SELECT repeat('€', 349526)::retention.imsi;
SELECT repeat('9', 1048576)::text::retention.imei;
SELECT repeat('208-', 262144)::retention.cell;
SELECT length(repeat('x', 1048576)::retention.ident) AS ident_1mb;

-- type modifiers: the purposes, in any order, shown in canonical order
CREATE TABLE cdr_types (
	caller	retention.msisdn(law_enforcement, billing),
	callee	retention.msisdn(billing),
	imsi	retention.imsi(law_enforcement),
	imei	retention.imei(law_enforcement),
	cell	retention.cell(network_security, law_enforcement, marketing, billing),
	sip		retention.ident,
	note	text
);
\d cdr_types
SELECT attname, format_type(atttypid, atttypmod)
  FROM pg_attribute WHERE attrelid = 'cdr_types'::regclass AND attnum > 0 ORDER BY attnum;
CREATE TABLE bad (c retention.msisdn(advertising));
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE bad (c retention.msisdn(billing, billing));
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE bad (c retention.msisdn('billing', 'Law_Enforcement'));
\d bad
DROP TABLE bad;
CREATE TABLE bad (c retention.msisdn(1));
\echo :LAST_ERROR_SQLSTATE
-- a name is quoted up to 40 bytes, even a 1 MB string constant (found by
-- fuzzing); identifiers stop at 63 bytes anyway
\set ECHO none
SELECT format('CREATE TABLE bad (c retention.msisdn(billing, %L))', repeat('x', 1048576)) AS stmt \gset
:stmt;
\set ECHO all
\echo :LAST_ERROR_SQLSTATE
SELECT retention.purposes_in(ARRAY[repeat('é', 524288)]::cstring[]);
-- called directly, purposes_in checks the shape of its array
SELECT retention.purposes_in('{billing,NULL}'::cstring[]);
SELECT retention.purposes_in('{{billing},{marketing}}'::cstring[]);

-- assignment from text validates; nothing is stored on error
INSERT INTO cdr_types VALUES ('+33612345678', '33698765432', '208011234567890',
	'490154203237518', '208-01-1234-5678', 'sip:alice@example.net', 'ok');
INSERT INTO cdr_types (caller) VALUES ('not a number');
INSERT INTO cdr_types (caller) SELECT '33612'::text;
INSERT INTO cdr_types (imei) VALUES ('490154203237519'::varchar);
INSERT INTO cdr_types (imei) VALUES ('490154203237518 '::char(16));
SELECT count(*) FROM cdr_types;
SELECT caller, imei FROM cdr_types ORDER BY caller;

-- casts: implicit to text, assignment to varchar; from text only by validation
SELECT pg_typeof(caller || ''), caller::text, caller::varchar, upper(sip) FROM cdr_types WHERE note = 'ok';
SELECT castsource::regtype, casttarget::regtype, castcontext, castmethod
  FROM pg_cast WHERE castsource = 'retention.msisdn'::regtype OR casttarget = 'retention.msisdn'::regtype
 ORDER BY castsource::regtype::text, casttarget::regtype::text;
SELECT castsource::regtype, casttarget::regtype, castcontext, castmethod
  FROM pg_cast WHERE casttarget = 'retention.ident'::regtype ORDER BY castsource::regtype::text;

-- text operators, LIKE, joins with text, GROUP BY, ORDER BY: all text's
INSERT INTO cdr_types (caller, callee, cell)
SELECT '336' || lpad((i % 50)::text, 8, '0'), '337' || lpad(i::text, 8, '0'),
	   '208-01-' || (i % 7) || '-' || i
  FROM generate_series(1, 2000) i;
SELECT count(*) FROM cdr_types WHERE caller LIKE '33600000%';
CREATE TABLE subscriber (msisdn text PRIMARY KEY, plan text);
INSERT INTO subscriber SELECT '336' || lpad(i::text, 8, '0'), CASE WHEN i % 2 = 0 THEN 'pro' ELSE 'home' END
  FROM generate_series(0, 49) i;
SELECT s.plan, count(*) FROM cdr_types c JOIN subscriber s ON s.msisdn = c.caller GROUP BY s.plan ORDER BY 1;
SELECT caller, count(*) FROM cdr_types GROUP BY caller ORDER BY count(*) DESC, caller LIMIT 3;
SELECT count(DISTINCT cell) AS cells, min(cell), max(cell) FROM cdr_types;
SELECT caller = '33600000001' AS eq_literal, caller = '33600000001'::retention.msisdn AS eq_typed
  FROM cdr_types WHERE caller = '+33600000001'::retention.msisdn LIMIT 1;

-- a btree index on a tagged column is text_ops, and equality uses it
CREATE INDEX cdr_types_caller ON cdr_types (caller);
SELECT opcname FROM pg_index i JOIN pg_opclass o ON o.oid = i.indclass[0]
 WHERE i.indexrelid = 'cdr_types_caller'::regclass;
ANALYZE cdr_types;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM cdr_types WHERE caller = '33600000007';
EXPLAIN (COSTS OFF) SELECT * FROM cdr_types c JOIN subscriber s ON s.msisdn = c.caller WHERE s.plan = 'pro';
RESET enable_seqscan;
CREATE INDEX cdr_types_cell_hash ON cdr_types USING hash (cell);
CREATE UNIQUE INDEX ON cdr_types (callee);

-- binary COPY round trip, and a bad value refused by binary input
\getenv abs_builddir PG_ABS_BUILDDIR
\set copyfile :abs_builddir '/results/types.bin'
COPY (SELECT caller, imei, cell FROM cdr_types WHERE note = 'ok') TO :'copyfile' (FORMAT binary);
CREATE TABLE cdr_copy (caller retention.msisdn(billing), imei retention.imei, cell retention.cell);
COPY cdr_copy FROM :'copyfile' (FORMAT binary);
SELECT * FROM cdr_copy;
COPY (SELECT '33612'::text, NULL::text, NULL::text) TO :'copyfile' (FORMAT binary);
COPY cdr_copy FROM :'copyfile' (FORMAT binary);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.msisdn_send('33612345678') AS send;

-- existing CDR tables convert in place, without USING
CREATE TABLE legacy (a text, b varchar(20), c char(16), d text, e varchar, f text);
INSERT INTO legacy VALUES ('+33612345678', '33698765432', '490154203237518', 'sip:bob@example.net', '10.0.0.1', '33611111111');
ALTER TABLE legacy ALTER COLUMN a TYPE retention.msisdn(billing),
				   ALTER COLUMN b TYPE retention.msisdn(billing),
				   ALTER COLUMN c TYPE retention.imei(law_enforcement);
SELECT * FROM legacy;
-- a bad value aborts the conversion, naming the value
INSERT INTO legacy (f) VALUES ('not-an-msisdn');
ALTER TABLE legacy ALTER COLUMN f TYPE retention.msisdn;
SELECT f FROM legacy ORDER BY f;
DELETE FROM legacy WHERE a IS NULL;
-- ident from text or varchar, and a change of purposes only: no rewrite
SELECT pg_relation_filenode('legacy') AS before \gset
ALTER TABLE legacy ALTER COLUMN d TYPE retention.ident(law_enforcement),
				   ALTER COLUMN e TYPE retention.ident;
SELECT pg_relation_filenode('legacy') = :before AS ident_not_rewritten;
ALTER TABLE legacy ALTER COLUMN a TYPE retention.msisdn(billing, law_enforcement);
ALTER TABLE legacy ALTER COLUMN c TYPE retention.imei;
SELECT pg_relation_filenode('legacy') = :before AS purposes_not_rewritten;
-- back to text is binary-coercible too; validating text rewrites
ALTER TABLE legacy ALTER COLUMN a TYPE text;
SELECT pg_relation_filenode('legacy') = :before AS back_to_text_not_rewritten;
ALTER TABLE legacy ALTER COLUMN f TYPE retention.msisdn(marketing);
SELECT pg_relation_filenode('legacy') = :before AS validation_not_rewritten;
\d legacy

DROP TABLE cdr_types, cdr_copy, subscriber, legacy;
RESET search_path;
