--
-- Key bytes are for superusers only (issue 13, item 15): export_keys() and
-- import_key() refuse retention_admin members and any role granted EXECUTE
-- on them, and a pg_read_all_data member (a typical backup role) reads no
-- row of retention.key.
--
\set SHOW_CONTEXT never
SET search_path = public;
CREATE ROLE regress_ka_admin IN ROLE retention_admin;
CREATE ROLE regress_ka_backup IN ROLE pg_read_all_data;
CREATE ROLE regress_ka_granted;

-- a retention_admin member may manage keys, but not read or set their bytes
SET ROLE regress_ka_admin;
SELECT count(*) FROM retention.export_keys();
\echo :LAST_ERROR_SQLSTATE
SELECT retention.import_key(523456789, sha256('planted key'), now(), NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS keys FROM retention.key_info;
RESET ROLE;

-- EXECUTE granted by a superuser does not open them either
GRANT EXECUTE ON FUNCTION retention.export_keys() TO regress_ka_granted;
GRANT EXECUTE ON FUNCTION retention.import_key(integer, bytea, timestamptz, timestamptz) TO regress_ka_granted;
SET ROLE regress_ka_granted;
SELECT count(*) FROM retention.export_keys();
\echo :LAST_ERROR_SQLSTATE
SELECT retention.import_key(523456789, sha256('planted key'), now(), NULL);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
REVOKE EXECUTE ON FUNCTION retention.export_keys() FROM regress_ka_granted;
REVOKE EXECUTE ON FUNCTION retention.import_key(integer, bytea, timestamptz, timestamptz) FROM regress_ka_granted;

-- pg_read_all_data bypasses table privileges, not row security: no row
SET ROLE regress_ka_backup;
SELECT count(*) AS key_rows_seen FROM retention.key;
SELECT count(*) > 0 AS audit_rows_seen FROM retention.audit_log;
RESET ROLE;
SELECT c.relrowsecurity, c.relforcerowsecurity,
	   (SELECT count(*) FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid) AS policies
  FROM pg_catalog.pg_class c WHERE c.oid = 'retention.key'::regclass;

-- a superuser reads and exports them (audited); as another role it cannot
SELECT count(*) > 0 AS superuser_sees_keys FROM retention.key;
SELECT count(*) > 0 AS exported FROM retention.export_keys();
SELECT action, as_role FROM retention.audit_log ORDER BY id DESC LIMIT 1;
SET ROLE regress_ka_backup;
SELECT count(*) FROM retention.export_keys();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

DROP ROLE regress_ka_admin, regress_ka_backup, regress_ka_granted;
