--
-- Anonymization and keys (SPEC 3.7)
--
\set SHOW_CONTEXT never
SET search_path = public;
SET datestyle = 'ISO, YMD';
SET intervalstyle = postgres;

-- the key made by CREATE EXTENSION: one, current, 9-digit id
SELECT count(*) AS keys, bool_and(is_current) AS current, min(id) BETWEEN 100000000 AND 999999999 AS nine_digits
  FROM retention.key_info;
SELECT id AS key1 FROM retention.key_info WHERE is_current \gset

-- erase: NULL, for every type
SELECT retention.anonymize('+33612345678'::retention.msisdn, 'erase') AS msisdn,
	   retention.anonymize('208011234567890'::retention.imsi, 'erase') AS imsi,
	   retention.anonymize('490154203237518'::retention.imei, 'erase') AS imei,
	   retention.anonymize('208-01-1234-5678'::retention.cell, 'erase') AS cell,
	   retention.anonymize('sip:alice@example.net'::retention.ident, 'erase') AS ident,
	   retention.anonymize('2026-03-01 12:34:56+00'::timestamptz, 'erase') AS ts;

-- generalize msisdn: country code and operator prefix, hiding at least six
-- digits; per-country rules for NANP, 7, France and its overseas
-- departments and a few neighbours, two national digits elsewhere
SELECT v AS msisdn, retention.anonymize(v::retention.msisdn, 'generalize') AS generalized, note
  FROM (VALUES ('+33612345678', 'France, mobile 06 12'),
			   ('+33145678901', 'France, Paris 01 45'),
			   ('+33756123456', 'France, mobile 07 56'),
			   ('+262692123456', 'Réunion, mobile 0692'),
			   ('+590690123456', 'Guadeloupe, mobile 0690'),
			   ('+12125550123', 'NANP: area code 212'),
			   ('+79161234567', 'Russia: DEF code 916'),
			   ('+4915123456789', 'Germany: 151'),
			   ('+393471234567', 'Italy: 347'),
			   ('+34612345678', 'Spain: 612'),
			   ('+32471234567', 'Belgium: 471'),
			   ('+447700900123', 'United Kingdom: default, 2 digits'),
			   ('+351912345678', 'Portugal: 3-digit country code, default'),
			   ('+3546111234', 'Iceland: short numbers hide 6 digits'),
			   ('+508412345', 'Saint-Pierre: only the country code'),
			   ('+123456', 'shortest msisdn: only the country code'),
			   ('0612345678', 'no country code')) t(v, note);
-- already generalized: cut down to the rule, or left as it is
SELECT v AS msisdn, retention.anonymize(v::retention.msisdn, 'generalize') AS generalized
  FROM (VALUES ('336123456*'), ('33612*'), ('336*'), ('3*'), ('12125*')) t(v);

-- generalize imsi: MCC+MNC, with 3-digit MNCs for the MCCs that use them
SELECT v AS imsi, retention.anonymize(v::retention.imsi, 'generalize') AS generalized, note
  FROM (VALUES ('208011234567890', 'France, Orange: 208 01'),
			   ('20815123456789', 'France, Free: 208 15 (14 digits)'),
			   ('310260123456789', 'United States: 310 260'),
			   ('302720123456789', 'Canada: 302 720'),
			   ('722070123456789', 'Argentina: 722 070'),
			   ('732101123456789', 'Colombia: 732 101'),
			   ('405854123456789', 'India 405 mixes 2- and 3-digit MNCs: 2 kept'),
			   ('340011234567890', 'French Antilles: 340 01'),
			   ('208011*', 'generalized finer than the rule'),
			   ('20801*', 'generalized')) t(v, note);

-- generalize imei: the TAC (8 digits)
SELECT v AS imei, retention.anonymize(v::retention.imei, 'generalize') AS generalized
  FROM (VALUES ('490154203237518'), ('4901542032375101'), ('35209900176148' || '1'), ('49015420*')) t(v);

-- generalize cell: MCC-MNC-AREA, for every radio
SELECT v AS cell, retention.anonymize(v::retention.cell, 'generalize') AS generalized
  FROM (VALUES ('208-01-1234-5678'), ('208-010-42-123'), ('208-01-16777215-68719476735'),
			   ('208-01-1234')) t(v);

-- an ident that is not an IP address has no coarser form: generalizing erases it
SELECT retention.anonymize('sip:alice@example.net'::retention.ident, 'generalize');
\echo :LAST_ERROR_SQLSTATE

-- generalize timestamptz: truncated to the hour on the UTC epoch, so the
-- same instant whatever the session's time zone
SET timezone = 'UTC';
SELECT v, retention.anonymize(v, 'generalize') AS generalized
  FROM (VALUES ('2026-03-01 12:34:56.789+00'::timestamptz), ('2026-03-01 12:00:00+00'),
			   ('1999-12-31 23:59:59.999999+00'), ('1970-01-01 00:30:00+00'),
			   ('infinity'), ('-infinity')) t(v);
SET timezone = 'Asia/Kolkata';
SELECT retention.anonymize('2026-03-01 18:04:56+05:30'::timestamptz, 'generalize') AS kolkata,
	   retention.anonymize('2026-03-01 18:04:56+05:30'::timestamptz, 'generalize')
		 = '2026-03-01 12:00:00+00' AS same_instant;
SET timezone = 'Europe/Paris';
SELECT retention.anonymize('2026-03-29 02:30:00+01'::timestamptz, 'generalize') AS dst_day;
SELECT retention.anonymize(now(), 'hash');
\echo :LAST_ERROR_SQLSTATE

-- hash: ~k<key id>:<24 hex digits of HMAC-SHA-256>, deterministic
SELECT retention.anonymize('+33612345678'::retention.msisdn, 'hash') AS p1 \gset
SELECT :'p1' ~ '^~k[0-9]{9}:[0-9a-f]{24}$' AS pseudonym_form,
	   :'p1' LIKE '~k' || :key1 || ':%' AS current_key,
	   retention.anonymize('33612345678'::retention.msisdn, 'hash') = :'p1' AS deterministic;
-- it is HMAC-SHA-256 (pgcrypto's) of the normalized value under the key
SELECT :'p1' = '~k' || k.id || ':' || left(encode(hmac(convert_to('33612345678', 'UTF8'), k.key, 'sha256'), 'hex'), 24)
	   AS is_hmac_sha256
  FROM retention.key k WHERE k.retired_at IS NULL;
-- the normalized value only: the same number gives the same pseudonym in
-- every column and type, another number another pseudonym
SELECT retention.anonymize('33612345678'::retention.ident, 'hash') = :'p1' AS same_in_ident,
	   retention.anonymize('33612345679'::retention.msisdn, 'hash') <> :'p1' AS other_number;
SELECT count(DISTINCT retention.anonymize(('3361234' || lpad(i::text, 4, '0'))::retention.msisdn, 'hash'))
	   AS distinct_pseudonyms
  FROM generate_series(1, 1000) i;
SELECT retention.anonymize(v, 'hash') ~ '^~k[0-9]{9}:[0-9a-f]{24}$' AS hashed, pg_typeof(retention.anonymize(v, 'hash'))
  FROM (VALUES ('208011234567890'::retention.imsi)) t(v)
UNION ALL
SELECT retention.anonymize(v, 'hash') ~ '^~k[0-9]{9}:[0-9a-f]{24}$', pg_typeof(retention.anonymize(v, 'hash'))
  FROM (VALUES ('490154203237518'::retention.imei)) t(v)
UNION ALL
SELECT retention.anonymize(v, 'hash') ~ '^~k[0-9]{9}:[0-9a-f]{24}$', pg_typeof(retention.anonymize(v, 'hash'))
  FROM (VALUES ('208-01-1234-5678'::retention.cell)) t(v)
UNION ALL
SELECT retention.anonymize(v, 'hash') ~ '^~k[0-9]{9}:[0-9a-f]{24}$', pg_typeof(retention.anonymize(v, 'hash'))
  FROM (VALUES ('sip:alice@example.net'::retention.ident)) t(v);
SELECT length(retention.anonymize(repeat('x', 100000)::retention.ident, 'hash')) AS long_ident_hashed;

-- anonymized values are left as they are: hashing a pseudonym or a
-- generalized value changes nothing; generalizing a pseudonym leaves
-- nothing; erasing always erases
SELECT retention.anonymize(:'p1'::retention.msisdn, 'hash') = :'p1' AS pseudonym_kept,
	   retention.anonymize('33612*'::retention.msisdn, 'hash') AS generalized_kept,
	   retention.anonymize('208-01-1234'::retention.cell, 'hash') AS cell_area_kept,
	   retention.anonymize(:'p1'::retention.msisdn, 'generalize') IS NULL AS generalized_pseudonym,
	   retention.anonymize(:'p1'::retention.msisdn, 'erase') IS NULL AS erased_pseudonym;

-- NULL in, NULL out, for every method and type
SELECT m, retention.anonymize(NULL::retention.msisdn, m) AS msisdn, retention.anonymize(NULL::retention.imsi, m) AS imsi,
	   retention.anonymize(NULL::retention.imei, m) AS imei, retention.anonymize(NULL::retention.cell, m) AS cell,
	   CASE WHEN m <> 'generalize' THEN retention.anonymize(NULL::retention.ident, m) END AS ident,
	   CASE WHEN m <> 'hash' THEN retention.anonymize(NULL::timestamptz, m) END AS ts
  FROM unnest(ARRAY['erase', 'generalize', 'hash']) m;
-- methods are case-insensitive; a bad method is an error even on NULL
SELECT retention.anonymize('33612345678'::retention.msisdn, 'Generalize') AS mixed_case;
SELECT retention.anonymize('33612345678'::retention.msisdn, 'scramble');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.anonymize(NULL::retention.imei, 'scramble');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.anonymize('2026-03-01'::timestamptz, 'truncate');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.anonymize('33612345678'::retention.msisdn, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.anonymize(NULL::retention.ident, 'generalize');
\echo :LAST_ERROR_SQLSTATE

-- anonymized values are valid values of their column's type: through the
-- type's input (text), in tagged columns
CREATE TABLE cdr_anon (
	caller	retention.msisdn(billing, law_enforcement),
	imsi	retention.imsi(law_enforcement),
	imei	retention.imei(law_enforcement),
	cell	retention.cell(network_security),
	sip		retention.ident,
	ended_at timestamptz,
	method	text
);
CREATE TABLE cdr_clear (LIKE cdr_anon);
INSERT INTO cdr_clear VALUES
	('33612345678', '208011234567890', '490154203237518', '208-01-1234-5678', 'sip:alice@example.net', '2026-03-01 12:34:56+01'),
	('12125550123', '310260123456789', '4901542032375101', '310-260-65534-268435455', '10.0.0.1', '2026-03-01 23:59:59+01');
INSERT INTO cdr_anon
SELECT retention.anonymize(caller, m)::text, retention.anonymize(imsi, m)::text,
	   retention.anonymize(imei, m)::text, retention.anonymize(cell, m)::text,
	   CASE WHEN m <> 'generalize' THEN retention.anonymize(sip, m)::text END,
	   CASE WHEN m <> 'hash' THEN retention.anonymize(ended_at, m) END, m
  FROM cdr_clear, unnest(ARRAY['erase', 'generalize', 'hash']) m;
SELECT method, caller, imsi, imei, cell, sip, ended_at FROM cdr_anon WHERE method <> 'hash' ORDER BY method, caller;
SELECT method, count(*) AS rows,
	   bool_and(caller ~ '^~k[0-9]+:[0-9a-f]{24}$' AND imsi ~ '^~k[0-9]+:[0-9a-f]{24}$' AND
				imei ~ '^~k[0-9]+:[0-9a-f]{24}$' AND cell ~ '^~k[0-9]+:[0-9a-f]{24}$' AND
				sip ~ '^~k[0-9]+:[0-9a-f]{24}$') AS all_pseudonyms
  FROM cdr_anon WHERE method = 'hash' GROUP BY method;
-- in place, and a second time (idempotent)
UPDATE cdr_clear SET caller = retention.anonymize(caller, 'hash'), cell = retention.anonymize(cell, 'generalize');
SELECT md5(string_agg(caller || cell, ',' ORDER BY caller)) AS once FROM cdr_clear \gset
UPDATE cdr_clear SET caller = retention.anonymize(caller, 'hash'), cell = retention.anonymize(cell, 'generalize');
SELECT md5(string_agg(caller || cell, ',' ORDER BY caller)) = :'once' AS idempotent FROM cdr_clear;
-- billing aggregates still group on pseudonyms
SELECT count(DISTINCT caller) AS subscribers, count(*) AS calls
  FROM (SELECT retention.anonymize(('3361234567' || (i % 3))::retention.msisdn, 'hash') AS caller
		  FROM generate_series(1, 30) i) c;

-- rotation: a new current key, new pseudonyms; the old key is retired
SELECT coalesce(max(id), 0) AS audit_before FROM retention.audit_log \gset
SELECT retention.rotate_key() AS key2 \gset
SELECT :key2 <> :key1 AS new_id, :key2 BETWEEN 100000000 AND 999999999 AS nine_digits;
SELECT id = :key1 AS is_key1, id = :key2 AS is_key2, is_current, retired_at IS NOT NULL AS retired
  FROM retention.key_info ORDER BY created_at, id = :key2;
SELECT retention.anonymize('33612345678'::retention.msisdn, 'hash') AS p2 \gset
SELECT :'p2' <> :'p1' AS changed, :'p2' LIKE '~k' || :key2 || ':%' AS under_key2,
	   retention.anonymize('33612345678'::retention.msisdn, 'hash') = :'p2' AS deterministic;
-- old pseudonyms stay valid values, and are not hashed again
SELECT retention.anonymize(:'p1'::retention.msisdn, 'hash') = :'p1' AS old_pseudonym_kept;
-- a rotation rolled back leaves the key as it was, in this backend too
BEGIN;
SELECT retention.rotate_key() IS NOT NULL AS rotated;
SELECT retention.anonymize('33612345678'::retention.msisdn, 'hash') <> :'p2' AS changed_inside;
ROLLBACK;
SELECT retention.anonymize('33612345678'::retention.msisdn, 'hash') = :'p2' AS back_to_key2;
SELECT count(*) AS keys FROM retention.key_info;

-- destroy_keys: only keys retired at least that long ago, never the current one
SELECT retention.destroy_keys('1 hour') AS destroyed;
SELECT retention.rotate_key() AS key3 \gset
SELECT retention.destroy_keys('0') AS destroyed;
SELECT count(*) AS keys, bool_and(id = :key3) AS only_key3, bool_and(is_current) AS current FROM retention.key_info;
SELECT retention.anonymize('33612345678'::retention.msisdn, 'hash') LIKE '~k' || :key3 || ':%' AS under_key3;
SELECT retention.destroy_keys('0') AS destroyed;
SELECT retention.destroy_keys(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.destroy_keys('-1 day');
\echo :LAST_ERROR_SQLSTATE

-- import_key: keys carried over from another database (see the TAP test
-- for export and import through a dump); never the key in an error
SELECT retention.import_key(123456789, sha256('regress key'), '2025-01-01', '2025-06-01') AS added;
SELECT retention.import_key(123456789, sha256('regress key'), '2025-01-01', '2025-06-01') AS added_again;
SELECT retention.import_key(123456789, sha256('another key'), '2025-01-01', '2025-06-01');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.import_key(1000000000, sha256('regress key'), '2025-01-01', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.import_key(223456789, '\x0102'::bytea, '2025-01-01', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.import_key(223456789, NULL, '2025-01-01', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT id = 123456789 AS imported, is_current, CASE WHEN id = 123456789 THEN retired_at END AS imported_retired_at
  FROM retention.key_info ORDER BY created_at;
-- an imported current key becomes the current key
SELECT retention.import_key(223456789, sha256('regress current key'), '2025-02-01', NULL) AS added;
SELECT id, is_current FROM retention.key_info WHERE id IN (123456789, 223456789) ORDER BY id;
SELECT retention.anonymize('33612345678'::retention.msisdn, 'hash')
	   = '~k223456789:' || left(encode(hmac('33612345678'::bytea, sha256('regress current key'), 'sha256'), 'hex'), 24)
	   AS under_imported_key;
SELECT retention.rotate_key() IS NOT NULL AS rotated;
SELECT retention.destroy_keys('0') AS destroyed;

-- export_keys: every key, bytes included, for superusers only
SELECT count(*) AS exported, bool_and(octet_length(key) = 32) AS full_keys, bool_and(retired_at IS NULL) AS current
  FROM retention.export_keys();

-- every key action is audited, and no key bytes are in the audit log
SELECT action, object ~ '^[0-9]{9}$' AS key_id, details ? 'retired' AS names_retired,
	   jsonb_array_length(details->'destroyed') AS destroyed, jsonb_array_length(details->'keys') AS exported,
	   details - 'destroyed' - 'retired' - 'keys' AS other_details
  FROM retention.audit_log WHERE id > :audit_before ORDER BY id;
SELECT count(*) AS key_bytes_in_audit_log
  FROM retention.audit_log
 WHERE id > :audit_before AND (coalesce(object, '') || details::text) ~* '[0-9a-f]{16}|\\x|[a-z0-9+/]{40}';
SELECT valid FROM retention.verify_audit_log();

-- who may do what: ordinary roles neither read keys, nor hash, nor manage keys
CREATE ROLE regress_anon_clerk;
CREATE ROLE regress_anon_admin IN ROLE retention_admin;
SET ROLE regress_anon_clerk;
SELECT * FROM retention.key;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM retention.key_info;
\echo :LAST_ERROR_SQLSTATE
SELECT retention.rotate_key();
\echo :LAST_ERROR_SQLSTATE
SELECT retention.destroy_keys('0');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM retention.export_keys();
\echo :LAST_ERROR_SQLSTATE
SELECT retention.import_key(323456789, sha256('clerk key'), now(), NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.anonymize('33612345678'::retention.msisdn, 'hash');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.anonymize(NULL::retention.msisdn, 'hash');
\echo :LAST_ERROR_SQLSTATE
SELECT retention._random_bytes(32);
\echo :LAST_ERROR_SQLSTATE
-- erase and generalize are for everyone
SELECT retention.anonymize('33612345678'::retention.msisdn, 'generalize') AS generalized,
	   retention.anonymize('33612345678'::retention.msisdn, 'erase') AS erased;
RESET ROLE;

-- retention_admin members hash and manage keys, but never read the bytes;
-- hashing reads the key whatever the caller's privileges, in a new backend too
\c
SET search_path = public;
SET ROLE regress_anon_admin;
SELECT retention.anonymize('33612345678'::retention.msisdn, 'hash') ~ '^~k[0-9]{9}:[0-9a-f]{24}$' AS admin_hashes;
SELECT * FROM retention.key;
\echo :LAST_ERROR_SQLSTATE
SELECT key FROM retention.key;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO retention.key (id, key) VALUES (423456789, sha256('admin key'));
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS keys FROM retention.key_info;
SELECT retention.rotate_key() IS NOT NULL AS admin_rotates;
SELECT retention.destroy_keys('0') AS admin_destroys;
-- exporting key bytes is for superusers only (key_access.sql)
SELECT count(*) AS admin_exports FROM retention.export_keys();
\echo :LAST_ERROR_SQLSTATE
-- and the hashing follows the rotation at once
SELECT retention.anonymize('33612345678'::retention.msisdn, 'hash') LIKE '~k' || id || ':%' AS under_new_key
  FROM retention.key_info WHERE is_current;
SELECT actor = session_user AS by_me, as_role FROM retention.audit_log ORDER BY id DESC LIMIT 1;
RESET ROLE;

DROP TABLE cdr_anon, cdr_clear;
DROP ROLE regress_anon_clerk;
DROP ROLE regress_anon_admin;
RESET search_path;
