--
-- Temp-schema shadowing: a relation in the caller's temp schema named like
-- a catalog (pg_roles, pg_class, pg_namespace, pg_trigger) is never read
-- by retention's functions in place of the catalog (issue 13, item 1).
-- Every function that pins search_path puts pg_temp last; without it, the
-- temp schema is searched first for relations.
--
\set SHOW_CONTEXT never
SET search_path = public;

CREATE ROLE regress_ts_owner;
CREATE ROLE regress_ts_reader;
GRANT CREATE ON SCHEMA public TO regress_ts_owner;
CREATE SCHEMA regress_ts_secret;
CREATE TABLE regress_ts_secret.payroll (who text, salary int);
SET ROLE regress_ts_owner;
CREATE TABLE ts_cdr (id int, caller retention.msisdn(billing), ended_at timestamptz);
RESET ROLE;
SELECT retention.protect('ts_cdr', 'ended_at', subscriber => 'caller');
SELECT retention.expose('ts_cdr', 'billing', 'regress_ts_reader')::text AS view;

-- Each attempt starts in a new session (\c): PL/pgSQL keeps the plans it
-- made in a session, and a plan made before the planted relation existed
-- would not show what a fresh session does.
--
-- the table's owner, not retention_admin, plants a pg_roles that says it
-- is a superuser: _is_admin() still reads the catalog
\c
SET ROLE regress_ts_owner;
CREATE TEMP TABLE pg_roles (rolname name, rolsuper boolean, oid oid);
INSERT INTO pg_roles VALUES (current_user, true, 10);
ALTER TABLE ts_cdr DISABLE TRIGGER retention_expire_after;
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER retention_expire_before ON ts_cdr;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE ts_cdr ALTER COLUMN caller TYPE text;
\echo :LAST_ERROR_SQLSTATE
DROP TABLE pg_roles;
-- a pg_trigger without the disabled trigger, a pg_class that makes
-- 'pg_class'::regclass name something else: the guard still sees the change
\c
SET ROLE regress_ts_owner;
CREATE TEMP TABLE pg_trigger (tgrelid oid, tgname name, tgenabled "char");
ALTER TABLE ts_cdr DISABLE TRIGGER retention_expire_after;
\echo :LAST_ERROR_SQLSTATE
DROP TABLE pg_trigger;
\c
SET ROLE regress_ts_owner;
CREATE TEMP TABLE pg_class (oid oid, relnamespace oid, relowner oid, relname name);
ALTER TABLE ts_cdr DISABLE TRIGGER retention_expire_after;
\echo :LAST_ERROR_SQLSTATE
DROP TABLE pg_class;
RESET ROLE;
SELECT tgname, tgenabled FROM pg_catalog.pg_trigger
 WHERE tgrelid = 'ts_cdr'::regclass ORDER BY tgname;
SELECT pg_catalog.format_type(atttypid, atttypmod) AS caller_type FROM pg_catalog.pg_attribute
 WHERE attrelid = 'ts_cdr'::regclass AND attname = 'caller';

-- the reader of an exposure plants a pg_class and a pg_namespace that put
-- the exposed table in a schema it may not use, then alters a table of its
-- own: the superuser-owned event triggers that rebuild exposure views still
-- read the catalog, and grant it nothing
\c
SET ROLE regress_ts_reader;
SELECT pg_catalog.has_schema_privilege('regress_ts_secret', 'USAGE') AS reader_has_usage;
CREATE TEMP TABLE pg_namespace (oid oid, nspname name);
INSERT INTO pg_namespace VALUES (1, 'regress_ts_secret');
CREATE TEMP TABLE pg_class (oid oid, relnamespace oid, relowner oid, relname name);
INSERT INTO pg_class VALUES ('ts_cdr'::regclass, 1, 10, 'ts_cdr');
CREATE TEMP TABLE mine (a int);
ALTER TABLE mine ADD COLUMN b int;
SELECT pg_catalog.has_schema_privilege('regress_ts_secret', 'USAGE') AS reader_has_usage;
SELECT count(*) AS payroll_rows FROM regress_ts_secret.payroll;
\echo :LAST_ERROR_SQLSTATE
DROP TABLE pg_class, pg_namespace, mine;
RESET ROLE;
SELECT pg_catalog.to_regclass('regress_ts_secret.ts_cdr_billing') AS planted_view;
SELECT count(*) AS exposure_views FROM pg_catalog.pg_views WHERE viewname = 'ts_cdr_billing';

-- the catalog: every function of schema retention that sets search_path
-- sets it to pg_catalog, retention, pg_temp (pg_temp last), and every
-- SECURITY DEFINER function sets it, but the two C event trigger functions
-- that must resolve the statement's table in the caller's search_path and
-- pin it themselves for their own queries (guard.c)
SELECT p.oid::regprocedure AS function, p.proconfig
  FROM pg_catalog.pg_proc p
 WHERE p.pronamespace = 'retention'::regnamespace
   AND (p.prosecdef OR EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%'))
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c
					WHERE c = 'search_path=pg_catalog, retention, pg_temp')
 ORDER BY p.oid::regprocedure::text;
SELECT count(*) >= 30 AS many_pinned FROM pg_catalog.pg_proc p
 WHERE p.pronamespace = 'retention'::regnamespace
   AND 'search_path=pg_catalog, retention, pg_temp' = ANY (p.proconfig);

SELECT retention.unexpose('ts_cdr', 'billing', 'regress_ts_reader');
SELECT retention.unprotect('ts_cdr');
DROP TABLE ts_cdr;
DROP SCHEMA regress_ts_secret CASCADE;
REVOKE CREATE ON SCHEMA public FROM regress_ts_owner;
DROP ROLE regress_ts_owner, regress_ts_reader;
