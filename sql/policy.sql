--
-- Policy: the four purposes, their windows and legal ceilings (SPEC 3.4)
--
-- written for 1.0's rules: regime fr-2004 (sql/regimes.sql tests fr-2025)
SELECT count(*) >= 0 AS fr_2004 FROM retention.set_regime('fr-2004');
\set SHOW_CONTEXT never
SELECT purpose, "window", ceiling, legal_basis FROM retention.policy;

-- shorten and restore a window; each change is audited
SELECT coalesce(max(id), 0) AS audit_before FROM retention.audit_log \gset
SELECT retention.set_window('network_security', '1 month');
SELECT purpose, "window" FROM retention.policy WHERE purpose = 'network_security';
SELECT retention.set_window('billing', '6 months');
SELECT retention.set_window('billing', '12 months');
SELECT action, object, details, actor = session_user AS by_me
  FROM retention.audit_log WHERE id > coalesce(:'audit_before', '0')::bigint ORDER BY id;

-- errors: nothing changes
SELECT retention.set_window('billing', '13 months');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('law_enforcement', '2 years');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('network_security', '4 months');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('network_security', '-1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('advertising', '1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('marketing', '1 year');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('billing', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT purpose, "window" FROM retention.policy;
SELECT count(*) AS audited_since FROM retention.audit_log
 WHERE id > coalesce(:'audit_before', '0')::bigint;

-- the window is compared with the ceiling as calendar time (see
-- windows.sql): three months back from 1 May are 89 days, so neither 90
-- nor 91 days fits
SELECT retention.set_window('network_security', '90 days');
SELECT retention.set_window('network_security', '91 days');
SELECT retention.set_window('network_security', '3 months');

-- only retention_admin members and superusers change policy
CREATE ROLE regress_policy_clerk;
CREATE ROLE regress_policy_admin IN ROLE retention_admin;
SET ROLE regress_policy_clerk;
SELECT purpose FROM retention.policy;		-- anyone may read the policy
SELECT retention.set_window('billing', '1 month');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO retention.window_setting VALUES ('billing', '1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM retention.audit_log;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_policy_admin;
SELECT retention.set_window('billing', '11 months');
SELECT retention.set_window('billing', '1 year');
SELECT actor = session_user AS session_user, as_role FROM retention.audit_log ORDER BY id DESC LIMIT 1;
-- an admin still cannot bypass the audited functions
UPDATE retention.window_setting SET "window" = '2 years';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_policy_clerk;
DROP ROLE regress_policy_admin;

-- the extension installs in a second database of the same cluster
-- (retention_admin already exists there: roles are cluster-wide)
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_retention_second;
\c regress_retention_second
CREATE EXTENSION retention CASCADE;
SELECT count(*) AS purposes FROM retention.policy;
SELECT extname FROM pg_extension WHERE extname IN ('pgcrypto', 'retention') ORDER BY 1;
\c :regress_db
DROP DATABASE regress_retention_second;
SELECT count(*) >= 0 AS fr_2025 FROM retention.set_regime('fr-2025');
