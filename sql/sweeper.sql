--
-- The sweep runs an owner's code (its triggers, its rules' and indexes'
-- functions) as whom?  Never as a superuser: a table owner must not gain
-- a superuser's rights by the nightly sweep (issue 13, "Also").
--
\set SHOW_CONTEXT never
SET search_path = public;
CREATE ROLE regress_sw_owner;
CREATE ROLE regress_sw_admin IN ROLE retention_admin;
GRANT CREATE ON SCHEMA public TO regress_sw_owner;
SET ROLE regress_sw_owner;
CREATE TABLE sw_cdr (id int, caller retention.msisdn(billing), ended_at timestamptz);
CREATE TABLE sw_seen (who name, super boolean);
-- the owner's own trigger, which would make its owner a superuser if it
-- ever ran as one
CREATE FUNCTION sw_escalate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.sw_seen SELECT current_user, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user;
	IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
		EXECUTE 'ALTER ROLE regress_sw_owner SUPERUSER';
	END IF;
	RETURN OLD;
END $$;
CREATE TRIGGER sw_escalate BEFORE DELETE ON sw_cdr FOR EACH ROW EXECUTE FUNCTION sw_escalate();
RESET ROLE;
SELECT retention.protect('sw_cdr', 'ended_at', subscriber => 'caller');
SET session_replication_role = replica;		-- history, written before protection
INSERT INTO sw_cdr VALUES (1, '33611111111', now() - interval '2 years');
RESET session_replication_role;

SET client_min_messages = warning;
SET ROLE regress_sw_admin;
CALL retention.sweep('sw_cdr');
RESET ROLE;
RESET client_min_messages;
SELECT count(*) AS rows_left FROM sw_cdr;
SELECT who, super FROM sw_seen;
SELECT rolsuper AS owner_became_superuser FROM pg_catalog.pg_roles WHERE rolname = 'regress_sw_owner';
SELECT status, rows_deleted, run_by FROM retention.sweep_log WHERE relid = 'sw_cdr'::regclass;

-- the same through retention.anonymize(tbl, subscriber) (SECURITY DEFINER,
-- owned by a superuser): the owner's trigger runs as the owner
INSERT INTO sw_cdr VALUES (2, '33622222222', now() - interval '1 day');
DELETE FROM sw_seen;
SET ROLE regress_sw_admin;
SELECT * FROM retention.anonymize('sw_cdr'::regclass, subscriber => '33622222222');
RESET ROLE;
SELECT who, super FROM sw_seen;
SELECT rolsuper AS owner_became_superuser FROM pg_catalog.pg_roles WHERE rolname = 'regress_sw_owner';

-- and the owner's code cannot change the role of the session it runs in
-- (a security-restricted operation, as under VACUUM)
SET ROLE regress_sw_owner;
CREATE OR REPLACE FUNCTION sw_escalate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE 'SET ROLE regress_sw_owner';
	RETURN OLD;
END $$;
RESET ROLE;
SET session_replication_role = replica;
INSERT INTO sw_cdr VALUES (3, '33633333333', now() - interval '2 years');
RESET session_replication_role;
SET client_min_messages = warning;
SET ROLE regress_sw_admin;
CALL retention.sweep('sw_cdr');
RESET ROLE;
RESET client_min_messages;
SELECT status, rows_deleted, error FROM retention.sweep_log WHERE relid = 'sw_cdr'::regclass ORDER BY id;

SELECT retention.unprotect('sw_cdr');
DROP TABLE sw_cdr, sw_seen;
DROP FUNCTION sw_escalate();
REVOKE CREATE ON SCHEMA public FROM regress_sw_owner;
DROP ROLE regress_sw_owner, regress_sw_admin;

-- the worker sweeps as retention_sweeper: it cannot log in, is no
-- superuser, and may call the sweep and nothing else of retention's
SELECT rolcanlogin, rolsuper, rolcreaterole, rolbypassrls FROM pg_catalog.pg_roles
 WHERE rolname = 'retention_sweeper';
SELECT pg_catalog.has_function_privilege('retention_sweeper', 'retention.sweep(regclass, integer, boolean)', 'EXECUTE') AS may_sweep,
	   pg_catalog.has_table_privilege('retention_sweeper', 'retention.hold', 'SELECT') AS reads_holds,
	   pg_catalog.has_table_privilege('retention_sweeper', 'retention.sweep_log', 'INSERT') AS writes_log,
	   pg_catalog.has_function_privilege('retention_sweeper', 'retention.protect(regclass, name, name, text, name, name, text)', 'EXECUTE') AS may_protect,
	   pg_catalog.pg_has_role('retention_sweeper', 'retention_admin', 'MEMBER') AS is_admin;
-- a sweep run as it does the work and is logged under its name
CREATE TABLE sw_cdr2 (id int, caller retention.msisdn(billing), ended_at timestamptz);
SELECT retention.protect('sw_cdr2', 'ended_at');
SET session_replication_role = replica;
INSERT INTO sw_cdr2 VALUES (1, '33611111111', now() - interval '2 years');
RESET session_replication_role;
SET client_min_messages = warning;
SET ROLE retention_sweeper;
CALL retention.sweep('sw_cdr2');
RESET ROLE;
RESET client_min_messages;
SELECT status, rows_deleted, run_by FROM retention.sweep_log WHERE relid = 'sw_cdr2'::regclass;
SELECT retention.unprotect('sw_cdr2');
DROP TABLE sw_cdr2;
