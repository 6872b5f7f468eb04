--
-- Who holds retention_admin (issue 13, item 3): retention.admins() lists
-- members, direct or through other roles, superusers, and (before
-- PostgreSQL 16) CREATEROLE roles, which can grant themselves
-- retention_admin: shown here.  Two expected outputs: admins.out (15, where
-- the CREATEROLE role does it) and admins_1.out (16 and later, where it is
-- refused and admins() does not list it).
--
\set SHOW_CONTEXT never
CREATE ROLE regress_adm_direct IN ROLE retention_admin;
CREATE ROLE regress_adm_team IN ROLE retention_admin;
CREATE ROLE regress_adm_alice LOGIN IN ROLE regress_adm_team;
CREATE ROLE regress_adm_hr CREATEROLE;
CREATE ROLE regress_adm_plain;

SELECT * FROM retention.admins() WHERE role LIKE 'regress\_adm\_%';
SELECT count(*) > 0 AS superusers_listed FROM retention.admins() WHERE how = 'superuser';

-- a CREATEROLE role really can make itself retention_admin on 15
SET ROLE regress_adm_hr;
GRANT retention_admin TO regress_adm_hr;
RESET ROLE;
SELECT role, how, granted_by FROM retention.admins() WHERE role = 'regress_adm_hr' ORDER BY how;

-- for retention_admin members (and superusers) only
SET ROLE regress_adm_plain;
SELECT * FROM retention.admins();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_adm_alice;
SELECT count(*) > 0 AS alice_reads FROM retention.admins();
RESET ROLE;

DROP ROLE regress_adm_alice, regress_adm_team, regress_adm_direct, regress_adm_hr, regress_adm_plain;
