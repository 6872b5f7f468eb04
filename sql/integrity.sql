--
-- Taking tables out of retention is no loss of enforcement: nothing more
-- is audited as one
--
--
-- Integrity (SPEC 3.13, issue 13): retention's triggers are known by what
-- they are, not by their names; every loss of enforcement is refused, or
-- audited and shown by report() and verify(); no count claims work that
-- was not done; rows cannot leave a protected table unseen.
--
-- written for 1.0's rules: regime fr-2004 (sql/regimes.sql tests fr-2025)
SELECT count(*) >= 0 AS fr_2004 FROM retention.set_regime('fr-2004');
\set SHOW_CONTEXT never
SET search_path = public;
SET client_min_messages = warning;

CREATE ROLE regress_integ_owner;
CREATE ROLE regress_integ_reader;
CREATE ROLE regress_integ_billing;
GRANT CREATE ON SCHEMA public TO regress_integ_owner;
SET ROLE regress_integ_owner;
CREATE TABLE icdr (id int, caller retention.msisdn(billing, law_enforcement),
				   cell retention.cell(network_security), ended_at timestamptz);
CREATE TABLE iunrelated (a int);
RESET ROLE;
SELECT retention.protect('icdr', 'ended_at', subscriber => 'caller');
-- the triggers fire always: in replica mode too (a logical replication
-- apply worker writes in it: test/t/016_replica_writes.pl)
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'icdr'::regclass ORDER BY 1;

-- the audit rows this file adds
CREATE TEMP TABLE audit_mark AS SELECT coalesce(max(id), 0) AS id FROM retention.audit_log;
CREATE VIEW integ_report AS
	SELECT "table", "column", kind, rows_in_clear, note FROM retention.report()
	 WHERE "table"::text LIKE 'i%' AND kind NOT IN ('tagged', 'untagged');

--
-- Item 8: renaming one of retention's triggers is refused to everyone,
-- and whatever their name they are guarded by their function
--
SET ROLE regress_integ_owner;
ALTER TRIGGER retention_expire_after ON icdr RENAME TO x;
\echo :LAST_ERROR_SQLSTATE
-- ENABLE (without ALWAYS) would let replica-mode writes through
ALTER TABLE icdr ENABLE TRIGGER retention_expire_before;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE icdr ENABLE REPLICA TRIGGER retention_expire_after;
\echo :LAST_ERROR_SQLSTATE
-- replacing one with a function of one's own
CREATE OR REPLACE TRIGGER retention_expire_before BEFORE UPDATE ON icdr
	FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER retention_expire_before ON icdr;
\echo :LAST_ERROR_SQLSTATE
-- a rule would rewrite what the triggers and the sweep do
CREATE RULE keep_them AS ON DELETE TO icdr DO INSTEAD NOTHING;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- a superuser cannot rename them either
ALTER TRIGGER retention_expire_before ON icdr RENAME TO retention_expire_first;
\echo :LAST_ERROR_SQLSTATE

--
-- Item 11: rows cannot leave through inheritance or DETACH PARTITION, and
-- a tagged column cannot become NOT NULL (every erasure would fail)
--
SET ROLE regress_integ_owner;
CREATE TABLE ichild () INHERITS (icdr);
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE ichild2 (LIKE icdr);
ALTER TABLE ichild2 INHERIT icdr;
\echo :LAST_ERROR_SQLSTATE
DROP TABLE ichild2;
ALTER TABLE icdr ALTER COLUMN cell SET NOT NULL;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE icdr ADD COLUMN imsi retention.imsi(billing) NOT NULL DEFAULT '208011234567890';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
CREATE TABLE ipart (caller retention.msisdn(law_enforcement), ended_at timestamptz)
	PARTITION BY RANGE (ended_at);
CREATE TABLE ipart_old PARTITION OF ipart FOR VALUES FROM ('2000-01-01') TO ('2100-01-01');
SELECT retention.protect('ipart', 'ended_at');
-- for everyone: a superuser too
ALTER TABLE ipart DETACH PARTITION ipart_old;
\echo :LAST_ERROR_SQLSTATE
-- a partition's own trigger cannot be disabled either
ALTER TABLE ipart_old DISABLE TRIGGER retention_expire_before;
SELECT * FROM integ_report WHERE "table" = 'ipart'::regclass;
ALTER TABLE ipart_old ENABLE ALWAYS TRIGGER retention_expire_before;

--
-- Item 10: what a superuser does is audited, shows in report(), makes
-- verify() raise, and the sweep does not count work it could not do
--
SET session_replication_role = replica;		-- history, written before protection
INSERT INTO icdr VALUES (1, '33611111111', '208-01-1-1', now() - interval '4 months'),
						(2, '33622222222', '208-01-1-2', now() - interval '5 months'),
						(3, '33633333333', '208-01-1-3', now() - interval '1 day');
RESET session_replication_role;
DROP TRIGGER retention_expire_before ON icdr;
ALTER TABLE icdr DISABLE TRIGGER retention_expire_after;
SELECT action, object, details FROM retention.audit_log
 WHERE id > (SELECT id FROM audit_mark) ORDER BY id;
SELECT * FROM integ_report;
SELECT retention.verify();
\echo :LAST_ERROR_SQLSTATE
CALL retention.sweep('icdr');
SELECT status, rows_anonymized, rows_deleted, error FROM retention.sweep_log
 WHERE relid = 'icdr'::regclass ORDER BY id DESC LIMIT 1;
SELECT id, cell FROM icdr ORDER BY id;
-- a superuser who turns the guards off is seen too
ALTER EVENT TRIGGER retention_guard_enforcement DISABLE;
ALTER EVENT TRIGGER retention_guard_start ENABLE;
SELECT kind, note FROM retention.report() WHERE "table" IS NULL;
SELECT retention.verify();
ALTER EVENT TRIGGER retention_guard_enforcement ENABLE ALWAYS;
ALTER EVENT TRIGGER retention_guard_start ENABLE ALWAYS;
-- protecting again restores the triggers (an audited protect)
SELECT retention.unprotect('icdr');
SELECT retention.protect('icdr', 'ended_at', subscriber => 'caller');
SELECT * FROM integ_report;

--
-- Item 9: the owner's own triggers cannot make the sweep or the write log
-- count what they kept
--
CREATE FUNCTION keep_old() RETURNS trigger LANGUAGE plpgsql AS
	$$BEGIN RETURN OLD; END$$;
CREATE FUNCTION keep_none() RETURNS trigger LANGUAGE plpgsql AS
	$$BEGIN RETURN NULL; END$$;
ALTER FUNCTION keep_old() OWNER TO regress_integ_owner;
ALTER FUNCTION keep_none() OWNER TO regress_integ_owner;
SET ROLE regress_integ_owner;
-- fires after retention's (names sort so) and writes the row back as it was
CREATE TRIGGER zz_keep_old BEFORE UPDATE ON icdr FOR EACH ROW EXECUTE FUNCTION keep_old();
CREATE TRIGGER zz_keep_none BEFORE DELETE ON icdr FOR EACH ROW EXECUTE FUNCTION keep_none();
RESET ROLE;
-- a BEFORE UPDATE trigger firing after retention's can undo its write-time
-- changes unseen: reported, and verify() raises on it
SELECT * FROM integ_report;
SET session_replication_role = replica;
INSERT INTO icdr VALUES (4, '33644444444', '208-01-1-4', now() - interval '2 years');
RESET session_replication_role;
CALL retention.sweep('icdr');
SELECT status, rows_anonymized, rows_deleted, error FROM retention.sweep_log
 WHERE relid = 'icdr'::regclass ORDER BY id DESC LIMIT 1;
SELECT id, caller, cell FROM icdr ORDER BY id;
SELECT retention.verify();
\echo :LAST_ERROR_SQLSTATE
-- a superuser's rule is audited, reported, and the sweep will not guess
-- what a rewritten statement did
CREATE RULE keep_them AS ON DELETE TO icdr DO INSTEAD NOTHING;
SELECT * FROM integ_report;
CALL retention.sweep('icdr');
SELECT status, rows_anonymized, rows_deleted, error FROM retention.sweep_log
 WHERE relid = 'icdr'::regclass ORDER BY id DESC LIMIT 1;
DROP RULE keep_them ON icdr;
-- a subject's request does not count what was kept either
SELECT * FROM retention.anonymize('icdr'::regclass, subscriber => '33633333333');
CREATE TABLE ikeep (caller retention.msisdn(billing), ended_at timestamptz);
SELECT retention.protect('ikeep', 'ended_at', subscriber => 'caller', on_expiry => 'anonymize');
INSERT INTO ikeep VALUES ('33699999999', now() - interval '1 day');
CREATE TRIGGER zz_keep_old BEFORE UPDATE ON ikeep FOR EACH ROW EXECUTE FUNCTION keep_old();
SELECT * FROM retention.anonymize('ikeep'::regclass, subscriber => '33699999999');
SELECT caller FROM ikeep;
SELECT retention.unprotect('ikeep');
DROP TABLE ikeep;
-- the expiry triggers, at write time: the row is kept, and logged as a failure
TRUNCATE retention.write_log;
INSERT INTO icdr VALUES (5, '33655555555', '208-01-1-5', now() - interval '2 years'),
						(6, '33666666666', '208-01-1-6', now() - interval '4 months');
SELECT action, rows, error FROM retention.write_log WHERE relid = 'icdr'::regclass ORDER BY action;
DROP TRIGGER zz_keep_old ON icdr;
DROP TRIGGER zz_keep_none ON icdr;
CALL retention.sweep('icdr');
SELECT status, rows_anonymized, rows_deleted, error FROM retention.sweep_log
 WHERE relid = 'icdr'::regclass ORDER BY id DESC LIMIT 1;
SELECT id, caller, cell FROM icdr ORDER BY id;

--
-- Item 13: an exposure of a table whose owner is not retention_admin
-- works for its reader, who learns nothing of holds but what it shows
--
SELECT retention.expose('icdr', 'network_security', 'regress_integ_reader');
SELECT retention.expose('icdr', 'billing', 'regress_integ_billing');
SET session_replication_role = replica;
INSERT INTO icdr VALUES (7, '33677777777', NULL, now() - interval '13 months'),
						(8, '33688888888', NULL, now() - interval '13 months');
RESET session_replication_role;
SELECT retention.hold('icdr', '33677777777', now() - interval '2 years', now(),
					  'billing_dispute', 'INV-INTEG-1') AS hold \gset
SET ROLE regress_integ_billing;
SELECT id, caller FROM icdr_billing ORDER BY id;
SELECT count(*) FROM retention.hold;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT ctid AS held_row FROM icdr WHERE id = 7 \gset
SELECT ctid AS expired_row FROM icdr WHERE id = 8 \gset
SET ROLE regress_integ_billing;
-- what the function tells a reader of the view, the view shows
SELECT retention._exposure_kept('icdr'::regclass, :'held_row', 'billing') AS held,
	   retention._exposure_kept('icdr'::regclass, :'expired_row', 'billing') AS expired_held;
RESET ROLE;
-- a role that reads no view of the table for that purpose learns nothing
SET ROLE regress_integ_reader;
SELECT retention._exposure_kept('icdr'::regclass, :'held_row', 'billing') AS held;
RESET ROLE;
SELECT retention.release(:hold);

--
-- Item 12: an ALTER TABLE rebuilds the views of that table only, and a
-- view that someone else's view depends on never blocks it
--
SET ROLE regress_integ_reader;
CREATE TEMP VIEW pin AS SELECT * FROM icdr_network_security;
RESET ROLE;
SELECT 'icdr_billing'::regclass::oid AS billing_view \gset
ALTER TABLE iunrelated ADD COLUMN b int;
SELECT 'icdr_billing'::regclass::oid = :billing_view AS untouched;
-- the table's own ALTER: the pinned view follows where its columns allow
ALTER TABLE icdr ADD COLUMN duration int;
SELECT attname FROM pg_attribute WHERE attrelid = 'icdr_network_security'::regclass AND attnum > 0 ORDER BY attnum;
SELECT attname FROM pg_attribute WHERE attrelid = 'icdr_billing'::regclass AND attnum > 0 ORDER BY attnum;
-- and where they do not, it is left showing nothing, and report() says so
ALTER TABLE icdr ALTER COLUMN cell TYPE retention.cell(network_security, law_enforcement);
SET ROLE regress_integ_reader;
SELECT count(*) FROM icdr_network_security;
SELECT count(*) FROM pin;
RESET ROLE;
SELECT * FROM integ_report;
-- unexpose() does not drop someone else's view either
SELECT retention.unexpose('icdr', 'network_security', 'regress_integ_reader');
\echo :LAST_ERROR_SQLSTATE
DROP VIEW pin;
SELECT retention.unexpose('icdr', 'network_security', 'regress_integ_reader');

--
-- Item 17: tagged values outside any protected table
--
CREATE TABLE icopy AS SELECT id, caller, cell FROM icdr;
CREATE TABLE icopy_empty AS SELECT caller FROM icdr WHERE false;
CREATE TABLE icopy_anon AS SELECT retention.anonymize(cell, 'generalize') AS cell FROM icdr WHERE cell IS NOT NULL;
CREATE MATERIALIZED VIEW imv AS SELECT caller FROM icdr;
SELECT "table", "column", kind, rows_in_clear, note FROM retention.report()
 WHERE kind = 'unprotected copy' AND "table"::text LIKE 'i%' ORDER BY 1, 2;
SELECT retention.verify();
\echo :LAST_ERROR_SQLSTATE
DROP TABLE icopy, icopy_empty, icopy_anon;
DROP MATERIALIZED VIEW imv;

--
-- Item 19: a column that lost its tag since protect()
--
SET ROLE regress_integ_owner;
ALTER TABLE icdr ALTER COLUMN cell TYPE text;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
ALTER TABLE icdr ALTER COLUMN cell TYPE text;
SELECT * FROM integ_report;
SELECT retention.verify();
\echo :LAST_ERROR_SQLSTATE

--
-- Item 18: a superuser's own session in replica mode stores rows as written
-- (loading history), and the sweep catches them; rows from a logical
-- replication apply worker are enforced as they arrive (TAP 015)
--
SELECT retention.unprotect('icdr');
SELECT retention.unprotect('ipart');
SELECT action, object FROM retention.audit_log
 WHERE id > (SELECT id FROM audit_mark) AND action LIKE 'enforcement%' ORDER BY id;
DROP VIEW integ_report;
DELETE FROM retention.sweep_log WHERE relid IN ('icdr'::regclass, 'ipart'::regclass);
TRUNCATE retention.write_log;
DROP TABLE icdr, iunrelated, ipart CASCADE;
DROP FUNCTION keep_old(), keep_none();
REVOKE CREATE ON SCHEMA public FROM regress_integ_owner;
DROP ROLE regress_integ_owner, regress_integ_reader, regress_integ_billing;
SELECT count(*) >= 0 AS fr_2025 FROM retention.set_regime('fr-2025');
