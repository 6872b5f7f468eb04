--
-- NOT NULL tagged columns (issue 17 item 1): real writers declare their
-- columns NOT NULL DEFAULT ''.  Such a column is erased to the empty
-- value, which every tagged type accepts and which counts as erased; a
-- NOT NULL column that cannot be erased so is refused, by protect() and
-- by the guards alike.
--
\set SHOW_CONTEXT never
SET search_path = public;
SET client_min_messages = warning;
-- written for 1.0's rules: regime fr-2004 (sql/regimes.sql tests fr-2025,
-- where moving ended_at earlier past a floor is refused)
SELECT count(*) >= 0 AS fr_2004 FROM retention.set_regime('fr-2004');

-- the empty value is valid for every type, and anonymized
SELECT ''::retention.msisdn AS msisdn, ''::retention.imsi AS imsi, ''::retention.imei AS imei,
	   ''::retention.cell AS cell, ''::retention.ident AS ident;
SELECT retention._anonymized('', 'retention.msisdn') AS msisdn,
	   retention._anonymized('', 'retention.cell') AS cell,
	   retention._anonymized('', 'retention.ident') AS ident,
	   retention._anonymized('33612345678', 'retention.msisdn') AS clear;
SELECT retention.anonymize(''::retention.msisdn, 'generalize') IS NULL AS generalized,
	   retention.anonymize(''::retention.cell, 'erase') IS NULL AS erased;

CREATE ROLE regress_nn_owner;
GRANT CREATE ON SCHEMA public TO regress_nn_owner;
SET ROLE regress_nn_owner;
-- rows written before the table is protected, some long past every window
CREATE TABLE nncdr (id int, caller retention.msisdn(billing) NOT NULL DEFAULT '',
					src_user retention.ident(law_enforcement) NOT NULL DEFAULT '',
					cell retention.cell(network_security) NOT NULL DEFAULT ''::text,
					imei retention.imei(law_enforcement),
					ended_at timestamptz NOT NULL);
INSERT INTO nncdr VALUES (1, '33612345678', 'alice', '208-01-1234-5678', '490154203237518', now() - interval '5 years'),
						 (2, '33612345679', 'bob', '208-01-1234-5679', NULL, now() - interval '1 hour'),
						 (3, DEFAULT, DEFAULT, DEFAULT, NULL, now() - interval '5 years');
RESET ROLE;
SELECT retention.protect('nncdr', 'ended_at', on_expiry => 'anonymize');
SELECT kind, problem FROM retention._enforcement_problems('nncdr');
-- the sweep erases the NOT NULL columns to the empty value, the others to NULL
CALL retention.sweep();
SELECT id, caller, src_user, cell, imei, caller = '' AS caller_empty FROM nncdr ORDER BY id;
-- a row written past its windows is erased on its way in, in the same way
INSERT INTO nncdr (id, caller, src_user, cell, ended_at)
	VALUES (4, '33612345670', 'carol', '208-01-1234-5670', now() - interval '5 years');
UPDATE nncdr SET ended_at = now() - interval '5 years' WHERE id = 2;
SELECT id, caller, src_user, cell, imei FROM nncdr ORDER BY id;
-- an erased value is not written again, and counts as erased
CALL retention.sweep();
SELECT rows_scanned, rows_anonymized, rows_deleted FROM retention.sweep_log
 WHERE relid = 'nncdr'::regclass ORDER BY id DESC LIMIT 1;
SELECT "column", kind, rows_in_clear, overdue_rows FROM retention.report()
 WHERE "table" = 'nncdr'::regclass ORDER BY 1, 2;
SELECT retention.verify();
-- a copy of erased values holds nothing in clear
CREATE TABLE nncopy AS SELECT caller, src_user FROM nncdr;
SELECT "column", kind, rows_in_clear FROM retention.report()
 WHERE "table" = 'nncopy'::regclass ORDER BY 1;
INSERT INTO nncopy VALUES ('33612345678', '');
SELECT retention.verify();
\echo :LAST_ERROR_SQLSTATE
DROP TABLE nncopy;

--
-- protect() refuses a NOT NULL column that cannot be erased to the empty
-- value, saying why and what to do
--
SET ROLE regress_nn_owner;
CREATE TABLE nnbad1 (caller retention.msisdn(billing) NOT NULL, ended_at timestamptz);
-- a default that is itself a personal value
CREATE TABLE nnbad2 (caller retention.msisdn(billing) NOT NULL DEFAULT '33612345678', ended_at timestamptz);
-- a default that is not a constant
CREATE TABLE nnbad3 (src_user retention.ident(billing) NOT NULL DEFAULT (random()::text)::retention.ident,
					 ended_at timestamptz);
-- the empty default, but a check constraint the empty value fails
CREATE TABLE nnbad4 (caller retention.msisdn(billing) NOT NULL DEFAULT '' CHECK (caller <> ''),
					 ended_at timestamptz);
RESET ROLE;
SELECT retention.protect('nnbad1', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('nnbad2', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('nnbad3', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('nnbad4', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM retention.protected_table WHERE relid::text LIKE 'nnbad%';

--
-- the guards: on a protected table, a tagged column becomes or stays NOT
-- NULL only where it can be erased to the empty value; for the owner and
-- a superuser alike
--
SET ROLE regress_nn_owner;
CREATE TABLE nnguard (caller retention.msisdn(billing), src_user retention.ident(billing) NOT NULL DEFAULT '',
					  ended_at timestamptz);
RESET ROLE;
SELECT retention.protect('nnguard', 'ended_at', on_expiry => 'anonymize');
SET ROLE regress_nn_owner;
ALTER TABLE nnguard ALTER COLUMN caller SET NOT NULL;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE nnguard ALTER COLUMN src_user DROP DEFAULT;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE nnguard ALTER COLUMN src_user SET DEFAULT 'alice';
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE nnguard ADD CONSTRAINT nncheck CHECK (src_user <> '');
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE nnguard ADD COLUMN imsi retention.imsi(billing) NOT NULL DEFAULT '208011234567890';
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE nnguard ADD COLUMN imsi retention.imsi(billing) NOT NULL;
\echo :LAST_ERROR_SQLSTATE
-- allowed: the empty default first, then NOT NULL; a nullable column
-- without a default; a NOT NULL column with the empty default
ALTER TABLE nnguard ALTER COLUMN caller SET DEFAULT '';
ALTER TABLE nnguard ALTER COLUMN caller SET NOT NULL;
ALTER TABLE nnguard ALTER COLUMN src_user DROP NOT NULL, ALTER COLUMN src_user DROP DEFAULT;
ALTER TABLE nnguard ADD COLUMN imsi retention.imsi(billing) NOT NULL DEFAULT '';
RESET ROLE;
-- a superuser is refused too
ALTER TABLE nnguard ALTER COLUMN caller DROP DEFAULT;
\echo :LAST_ERROR_SQLSTATE
SELECT attname, attnotnull, pg_get_expr(d.adbin, d.adrelid) AS "default"
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = 'nnguard'::regclass AND a.attnum > 0 ORDER BY a.attnum;
SELECT kind, problem FROM retention._enforcement_problems('nnguard');
-- the NOT NULL columns are erased to the empty value, the other to NULL
INSERT INTO nnguard VALUES ('33612345671', 'alice', now() - interval '5 years', '208011234567891');
SELECT caller = '' AS caller_empty, src_user IS NULL AS src_user_null, imsi = '' AS imsi_empty FROM nnguard;
-- what the guards keep out shows in report() and verify() when it gets
-- in anyway (here with the event triggers disabled, as a superuser can)
ALTER EVENT TRIGGER retention_guard_enforcement DISABLE;
ALTER TABLE nnguard ALTER COLUMN caller DROP DEFAULT;
ALTER EVENT TRIGGER retention_guard_enforcement ENABLE ALWAYS;
SELECT kind, problem FROM retention._enforcement_problems('nnguard');
SELECT note FROM retention.report() WHERE "table" = 'nnguard'::regclass AND kind = 'not enforced';
SELECT retention.verify();
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE nnguard ALTER COLUMN caller SET DEFAULT '';
SELECT retention.verify();

--
-- partitions: each leaf's own NOT NULL and default count
--
SET ROLE regress_nn_owner;
CREATE TABLE nnpart (caller retention.msisdn(billing) NOT NULL DEFAULT '', ended_at timestamptz NOT NULL)
	PARTITION BY RANGE (ended_at);
CREATE TABLE nnpart_old PARTITION OF nnpart FOR VALUES FROM ('2000-01-01') TO ('2100-01-01');
RESET ROLE;
SELECT retention.protect('nnpart', 'ended_at', on_expiry => 'anonymize');
SET ROLE regress_nn_owner;
ALTER TABLE nnpart_old ALTER COLUMN caller DROP DEFAULT;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE nnpart_old ALTER COLUMN caller SET DEFAULT '33600000000';
\echo :LAST_ERROR_SQLSTATE
INSERT INTO nnpart VALUES ('33612345678', now() - interval '5 years');
SELECT caller, caller = '' AS erased FROM nnpart;
RESET ROLE;

-- leave no trace in the write log of the files that follow
DELETE FROM retention.write_log WHERE relid::text LIKE 'nn%';
DROP TABLE nncdr, nnguard, nnbad1, nnbad2, nnbad3, nnbad4, nnpart;
REVOKE CREATE ON SCHEMA public FROM regress_nn_owner;
DROP ROLE regress_nn_owner;
SELECT count(*) >= 0 AS fr_2025 FROM retention.set_regime('fr-2025');
