--
-- protect() and the expiry triggers (SPEC 2, 3.3)
--
-- written for 1.0's rules: regime fr-2004 (sql/regimes.sql tests fr-2025)
SELECT count(*) >= 0 AS fr_2004 FROM retention.set_regime('fr-2004');
\set SHOW_CONTEXT never
SET search_path = public;
SELECT coalesce(max(id), 0) AS audit0 FROM retention.audit_log \gset
SELECT coalesce(max(id), 0) AS sweep0 FROM retention.sweep_log \gset

CREATE TABLE cdr (
	id			integer PRIMARY KEY,
	caller		retention.msisdn(billing, law_enforcement),
	callee		retention.msisdn(billing),
	imei		retention.imei(law_enforcement),
	cell		retention.cell(law_enforcement, network_security),
	netcell		retention.cell(network_security),
	started_at	timestamptz,
	ended_at	timestamptz,
	duration	integer
);

-- errors: each with its SQLSTATE, nothing protected
CREATE VIEW cdr_view AS SELECT * FROM cdr;
SELECT retention.protect('cdr_view', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('no_such_table', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('cdr', 'finished_at');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('cdr', 'duration');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('cdr', 'ended_at', subscriber => 'msisdn');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('cdr', 'ended_at', subscriber => 'duration');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('cdr', 'ended_at', on_expiry => 'archive');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('cdr', 'ended_at', billing_anchor => 'duration');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE untagged (caller text, ended_at timestamptz);
SELECT retention.protect('untagged', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE cdr_notnull (caller retention.msisdn(billing) NOT NULL, ended_at timestamptz);
SELECT retention.protect('cdr_notnull', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.unprotect('cdr');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS protected FROM retention.protected_table;

-- protect: the triggers, the catalog, the audit log
SELECT retention.protect('cdr', 'ended_at', subscriber => 'caller');
SELECT retention.protect('cdr', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
\d cdr
SELECT relid, ended_at, subscriber, on_expiry, billing_anchor FROM retention.protected_table;
SELECT * FROM retention.tagged_columns('cdr');
SELECT action, object, details->'columns' AS columns FROM retention.audit_log ORDER BY id DESC LIMIT 1;

-- the row-level cases, at write time.  A call in progress has nothing due;
-- one that ended yesterday keeps everything; four months ago, what is kept
-- only for network security is gone; thirteen months ago, everything is, so
-- the row is not kept at all.
INSERT INTO cdr VALUES
	(1, '+33611111111', '33622222222', '490154203237518', '208-01-1-11', '208-01-1-12', now(), NULL, NULL),
	(2, '+33611111111', '33622222222', '490154203237518', '208-01-1-11', '208-01-1-12', now() - interval '1 day', now() - interval '1 day', 60),
	(3, '+33611111111', '33622222222', '490154203237518', '208-01-1-11', '208-01-1-12', now() - interval '4 months', now() - interval '4 months', 60),
	(4, '+33611111111', '33622222222', '490154203237518', '208-01-1-11', '208-01-1-12', now() - interval '13 months', now() - interval '13 months', 60);
SELECT id, caller, callee, imei, cell, netcell, ended_at IS NULL AS in_progress FROM cdr ORDER BY id;
SELECT relid, action, rows FROM retention.write_log ORDER BY at;

-- a call completed late: the update is applied with what is due removed
INSERT INTO cdr VALUES (5, '33633333333', '33644444444', '490154203237518', '208-01-2-21', '208-01-2-22',
						now() - interval '5 months', NULL, NULL);
UPDATE cdr SET ended_at = started_at + interval '90 seconds', duration = 90 WHERE id = 5;
SELECT id, caller, netcell, duration FROM cdr WHERE id = 5;
-- a value rewritten past its deadline is not stored
UPDATE cdr SET netcell = '208-01-9-99' WHERE id = 3;
SELECT id, netcell FROM cdr WHERE id = 3;
-- an update that makes the whole row due removes the row
UPDATE cdr SET ended_at = now() - interval '2 years' WHERE id = 2;
SELECT id FROM cdr ORDER BY id;
-- a row whose call is still in progress is left alone
UPDATE cdr SET started_at = now() - interval '3 years' WHERE id = 1;
SELECT id, caller, netcell FROM cdr WHERE id = 1;
SELECT action, sum(rows) FROM retention.write_log GROUP BY action ORDER BY action;

-- a window change applies to the next write, without reconnecting
SELECT retention.set_window('network_security', '1 day');
INSERT INTO cdr VALUES (6, '33655555555', NULL, NULL, '208-01-3-31', '208-01-3-32', now() - interval '2 days', now() - interval '2 days', 1);
SELECT id, cell, netcell FROM cdr WHERE id = 6;
SELECT retention.set_window('network_security', '3 months');
-- and within one statement, whose writes all decide as of its start: the
-- write after the change has the new window
DO $$
BEGIN
	INSERT INTO cdr VALUES (8, '33655555555', NULL, NULL, '208-01-3-31', '208-01-3-32', now() - interval '2 days', now() - interval '2 days', 1);
	PERFORM retention.set_window('network_security', '1 day');
	INSERT INTO cdr VALUES (9, '33655555555', NULL, NULL, '208-01-3-31', '208-01-3-32', now() - interval '2 days', now() - interval '2 days', 1);
	PERFORM retention.set_window('network_security', '3 months');
END
$$;
SELECT id, cell, netcell FROM cdr WHERE id IN (8, 9) ORDER BY id;
DELETE FROM cdr WHERE id IN (8, 9);

-- methods: erase by default; generalize and hash per column (audited)
SELECT retention.set_method('cdr', 'netcell', 'generalize');
SELECT retention.set_method('cdr', 'imei', 'hash');
SELECT * FROM retention.tagged_columns('cdr');
INSERT INTO cdr VALUES (7, '33666666666', '33677777777', '490154203237518', '208-01-4-41', '208-01-4-42', now() - interval '4 months', now() - interval '4 months', 1);
SELECT id, caller, imei, cell, netcell FROM cdr WHERE id = 7;
SELECT action, object, details FROM retention.audit_log WHERE action = 'set_method' AND id > :audit0 ORDER BY id;
-- set_method errors
SELECT retention.set_method('cdr', 'netcell', 'shred');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_method('cdr', 'duration', 'hash');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_method('cdr', 'nothing', 'hash');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_method('untagged', 'caller', 'hash');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE sip (sip_from retention.ident(billing), ended_at timestamptz, CHECK (sip_from <> ''));
SELECT retention.protect('sip', 'ended_at');
SELECT retention.set_method('sip', 'sip_from', 'generalize');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_method('sip', 'sip_from', 'hash');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.unprotect('sip');
DROP TABLE sip;

-- the subject's request: everything of one subscriber, now
SELECT * FROM retention.anonymize('cdr', subscriber => '+33611111111');
SELECT id, caller, callee FROM cdr ORDER BY id;

-- on_expiry = 'anonymize' keeps fully due rows, anonymized, timestamps to the hour
CREATE TABLE cdr_kept (LIKE cdr);
SELECT retention.protect('cdr_kept', 'ended_at', subscriber => 'caller', on_expiry => 'anonymize');
SELECT retention.set_method('cdr_kept', 'cell', 'generalize');
INSERT INTO cdr_kept VALUES
	(1, '33611111111', '33622222222', '490154203237518', '208-01-1-11', '208-01-1-12',
	 '2020-01-01 10:17:23+00', '2020-01-01 10:19:41+00', 138);
SELECT id, caller, callee, imei, cell, netcell,
	   started_at AT TIME ZONE 'UTC' AS started_utc, ended_at AT TIME ZONE 'UTC' AS ended_utc, duration
  FROM cdr_kept;
SELECT relid, action, rows FROM retention.write_log WHERE relid = 'cdr_kept'::regclass;

-- the billing anchor: the billing year runs from the invoice's due date
CREATE TABLE cdr_billed (caller retention.msisdn(billing), cell retention.cell(network_security),
						 ended_at timestamptz, due_date timestamptz);
SELECT retention.protect('cdr_billed', 'ended_at', billing_anchor => 'due_date');
INSERT INTO cdr_billed VALUES
	('33611111111', '208-01-1-11', now() - interval '13 months', now() - interval '11 months'),
	('33622222222', '208-01-1-11', now() - interval '13 months', NULL),
	('33633333333', '208-01-1-11', now() - interval '14 months', now() - interval '13 months');
SELECT caller, cell FROM cdr_billed ORDER BY caller;

-- ended_at without time zone is read in retention.timezone
CREATE TABLE cdr_local (caller retention.msisdn(network_security), ended_local timestamp);
SELECT retention.protect('cdr_local', 'ended_local');
ALTER SYSTEM SET retention.timezone = 'Pacific/Kiritimati';		-- UTC+14
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
SHOW retention.timezone;
-- three months ago plus ten hours, local time: in Kiritimati that instant is past
INSERT INTO cdr_local VALUES ('33611111111', (now() AT TIME ZONE 'UTC') - interval '3 months' + interval '10 hours');
SELECT count(*) AS kept_kiritimati FROM cdr_local;
ALTER SYSTEM SET retention.timezone = 'UTC';
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
INSERT INTO cdr_local VALUES ('33611111111', (now() AT TIME ZONE 'UTC') - interval '3 months' + interval '10 hours');
SELECT count(*) AS kept_utc FROM cdr_local;
ALTER SYSTEM RESET retention.timezone;
SELECT pg_reload_conf();

-- a column kept for no purpose goes as soon as the call ends: the row is
-- changed before it is stored (BEFORE INSERT), never written in clear
CREATE TABLE cdr_sip (caller retention.msisdn(billing), call_id retention.ident, ended_at timestamptz);
SELECT retention.protect('cdr_sip', 'ended_at');
SELECT tgname, pg_get_triggerdef(oid) ~ 'BEFORE INSERT OR UPDATE' AS before_insert
  FROM pg_trigger WHERE tgrelid = 'cdr_sip'::regclass ORDER BY 1;
INSERT INTO cdr_sip VALUES ('33611111111', 'a84b4c76e66710@pc33.example.net', NULL),
						   ('33611111111', 'a84b4c76e66710@pc33.example.net', now());
SELECT caller, call_id, ended_at IS NULL AS in_progress FROM cdr_sip ORDER BY 3;

-- partitions: created or attached after protect() are covered, whatever
-- their column order
CREATE TABLE cdr_part (caller retention.msisdn(network_security), ended_at timestamptz)
	PARTITION BY RANGE (ended_at);
CREATE TABLE cdr_part_old PARTITION OF cdr_part FOR VALUES FROM ('2000-01-01') TO ('2026-01-01');
SELECT retention.protect('cdr_part', 'ended_at', subscriber => 'caller');
CREATE TABLE cdr_part_new PARTITION OF cdr_part FOR VALUES FROM ('2026-01-01') TO ('2100-01-01');
CREATE TABLE cdr_part_x (ended_at timestamptz, extra int, caller retention.msisdn(network_security));
ALTER TABLE cdr_part_x DROP COLUMN extra;
-- a partition cannot be detached: its rows would leave retention
ALTER TABLE cdr_part DETACH PARTITION cdr_part_old;
DROP TABLE cdr_part_old;
CREATE TABLE cdr_part_old (caller retention.msisdn(network_security), ended_at timestamptz);
ALTER TABLE cdr_part ATTACH PARTITION cdr_part_x FOR VALUES FROM ('2000-01-01') TO ('2026-01-01');
INSERT INTO cdr_part VALUES ('33611111111', '2020-01-01'), ('33622222222', now());
SELECT tableoid::regclass, caller FROM cdr_part ORDER BY 1;
SELECT retention.protect('cdr_part_new', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('cdr_part_old', 'ended_at');
SELECT retention.unprotect('cdr_part_old');

-- any schema, any identifier
CREATE SCHEMA "Telco; DROP TABLE cdr";
CREATE TABLE "Telco; DROP TABLE cdr"."CDR ""2026""" (
	"Caller No" retention.msisdn(network_security), "Ended At" timestamptz, "Due'" timestamptz);
SELECT retention.protect('"Telco; DROP TABLE cdr"."CDR ""2026"""', 'Ended At',
						 subscriber => 'Caller No', billing_anchor => 'Due''');
INSERT INTO "Telco; DROP TABLE cdr"."CDR ""2026""" VALUES ('33611111111', now() - interval '1 year', NULL),
	('33622222222', now(), NULL);
SELECT "Caller No" FROM "Telco; DROP TABLE cdr"."CDR ""2026""";
SELECT retention.set_method('"Telco; DROP TABLE cdr"."CDR ""2026"""', 'Caller No', 'generalize');
SELECT * FROM retention.anonymize('"Telco; DROP TABLE cdr"."CDR ""2026"""', subscriber => '33622222222');
SELECT "Caller No" FROM "Telco; DROP TABLE cdr"."CDR ""2026""";
SELECT retention.unprotect('"Telco; DROP TABLE cdr"."CDR ""2026"""');
DROP SCHEMA "Telco; DROP TABLE cdr" CASCADE;

-- a writer with INSERT privilege only, and a writer that must never fail
CREATE ROLE regress_voip;
GRANT INSERT ON cdr TO regress_voip;
CREATE TABLE cdr_dispute (cdr_id integer REFERENCES cdr (id));
SET ROLE regress_voip;
INSERT INTO cdr (id, caller, ended_at) VALUES (10, '33610101010', now() - interval '2 years');
RESET ROLE;
SELECT count(*) AS row_10 FROM cdr WHERE id = 10;
-- the row cannot be deleted (a dispute references it): the insert still
-- succeeds, with a warning, and the failure is logged for the sweep
BEGIN;
SET LOCAL session_replication_role = replica;	-- no triggers while back-filling the dispute
INSERT INTO cdr (id, caller, ended_at) VALUES (11, '33611111111', now() - interval '2 years');
INSERT INTO cdr_dispute VALUES (11);
DELETE FROM cdr WHERE id = 11;
COMMIT;
SET ROLE regress_voip;
INSERT INTO cdr (id, caller, ended_at) VALUES (11, '33611111111', now() - interval '2 years');
RESET ROLE;
SELECT id, caller FROM cdr WHERE id = 11;
SELECT action, error FROM retention.write_log WHERE action = 'failed';
DROP TABLE cdr_dispute;
REVOKE ALL ON cdr FROM regress_voip;

-- only retention_admin members protect, unprotect and choose methods
SET ROLE regress_voip;
SELECT retention.protect('untagged', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.unprotect('cdr');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_method('cdr', 'caller', 'hash');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM retention.anonymize('cdr', subscriber => '33611111111');
\echo :LAST_ERROR_SQLSTATE
DELETE FROM retention.protected_table;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM retention.write_log;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_voip;

-- unprotect: triggers and catalog rows go, data stay (audited)
SELECT retention.unprotect('cdr');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'cdr'::regclass AND tgname LIKE 'retention%';
SELECT count(*) AS methods FROM retention.column_method WHERE relid = 'cdr'::regclass;
SELECT action, object FROM retention.audit_log WHERE object = 'public.cdr' AND action IN ('protect', 'unprotect') AND id > :audit0 ORDER BY id;

SELECT retention.unprotect(relid) FROM retention.protected_table;
DROP TABLE cdr, cdr_kept, cdr_billed, cdr_local, cdr_sip, cdr_part, cdr_part_old, untagged, cdr_notnull CASCADE;
TRUNCATE retention.write_log;
RESET search_path;
SELECT count(*) >= 0 AS fr_2025 FROM retention.set_regime('fr-2025');
