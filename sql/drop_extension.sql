--
-- DROP EXTENSION retention would drop every purpose-tagged column of every
-- protected table, with its data, and the audit log.  While tables are
-- protected it is refused (as is DROP OWNED BY the extension's owner,
-- which would drop it too), unless a superuser sets
-- retention.allow_drop_extension (issue 13, item 20).  In a database of its
-- own, so that the other tests keep their extension.
--
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_drop_ext;
CREATE ROLE regress_ext_owner SUPERUSER;
CREATE ROLE regress_ext_plain;
\c regress_drop_ext
SET ROLE regress_ext_owner;
CREATE EXTENSION retention CASCADE;
RESET ROLE;
CREATE TABLE cdr (id int, caller retention.msisdn(billing), ended_at timestamptz);
INSERT INTO cdr VALUES (1, '33611111111', now());
SELECT retention.protect('cdr', 'ended_at');

DROP EXTENSION retention CASCADE;
\echo :LAST_ERROR_SQLSTATE
DROP EXTENSION retention;
\echo :LAST_ERROR_SQLSTATE
DROP EXTENSION IF EXISTS pg_trgm, retention CASCADE;
\echo :LAST_ERROR_SQLSTATE
-- and what would cascade to it
DROP OWNED BY regress_ext_owner CASCADE;
\echo :LAST_ERROR_SQLSTATE
DROP SCHEMA retention CASCADE;
\echo :LAST_ERROR_SQLSTATE
DROP EXTENSION pgcrypto CASCADE;
\echo :LAST_ERROR_SQLSTATE
-- also from a function
DO $$ BEGIN EXECUTE 'DROP SCHEMA retention CASCADE'; END $$;
\echo :LAST_ERROR_SQLSTATE
-- nothing was dropped
SELECT pg_catalog.format_type(atttypid, atttypmod) AS caller_type FROM pg_catalog.pg_attribute
 WHERE attrelid = 'cdr'::regclass AND attname = 'caller';
SELECT count(*) AS audit_rows FROM retention.audit_log;

-- an unrelated DROP ... CASCADE or DROP OWNED goes through, by any role
CREATE TABLE plain_t (a int);
CREATE VIEW plain_v AS SELECT * FROM plain_t;
ALTER TABLE plain_t OWNER TO regress_ext_plain;
ALTER VIEW plain_v OWNER TO regress_ext_plain;
SET ROLE regress_ext_plain;
DROP TABLE plain_t CASCADE;
DROP OWNED BY regress_ext_plain;
RESET ROLE;

-- the override is for superusers only
SET ROLE regress_ext_plain;
SET retention.allow_drop_extension = on;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- unprotected tables: nothing to refuse (the tagged column still goes
-- with CASCADE: that is what DROP EXTENSION means)
SELECT retention.unprotect('cdr');
BEGIN;
DROP EXTENSION retention CASCADE;
ROLLBACK;
SELECT retention.protect('cdr', 'ended_at');
-- a superuser who means it
SET retention.allow_drop_extension = on;
DROP EXTENSION retention CASCADE;
RESET retention.allow_drop_extension;
SELECT attname FROM pg_catalog.pg_attribute
 WHERE attrelid = 'cdr'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;

\c :regress_db
DROP DATABASE regress_drop_ext;
DROP ROLE regress_ext_owner, regress_ext_plain;
