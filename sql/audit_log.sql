--
-- The audit log: append-only and hash-chained (SPEC 3.11)
--
\set SHOW_CONTEXT never
SELECT retention.set_window('network_security', '2 months');
SELECT retention.set_window('network_security', '3 months');
SELECT valid, problem FROM retention.verify_audit_log();

-- nobody updates, deletes or truncates it, superusers included
UPDATE retention.audit_log SET actor = 'someone_else';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM retention.audit_log;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE retention.audit_log;
\echo :LAST_ERROR_SQLSTATE

-- each row carries the previous row's hash
SELECT bool_and(l.prev_hash = p.hash) AS chained
  FROM retention.audit_log l JOIN retention.audit_log p ON p.id = l.id - 1;
SELECT length(hash) AS sha256_bytes FROM retention.audit_log ORDER BY id DESC LIMIT 1;

-- a superuser who turns the triggers off can still change history, but the
-- chain names the first row touched
SELECT max(id) AS last FROM retention.audit_log \gset
BEGIN;
ALTER TABLE retention.audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE retention.audit_log SET details = '{"new": "2 years"}' WHERE id = :last - 1;
SELECT valid, first_broken_id = :last - 1 AS names_the_row, problem ~ 'changed' AS changed
  FROM retention.verify_audit_log();
ROLLBACK;
BEGIN;
ALTER TABLE retention.audit_log DISABLE TRIGGER audit_log_append_only;
DELETE FROM retention.audit_log WHERE id = :last - 1;
SELECT valid, first_broken_id = :last - 1 AS names_the_row, problem ~ 'missing' AS missing
  FROM retention.verify_audit_log();
ROLLBACK;
BEGIN;
ALTER TABLE retention.audit_log DISABLE TRIGGER audit_log_append_only;
-- a forged row that recomputes its own hash still breaks the next link
UPDATE retention.audit_log
   SET actor = 'mallory',
	   hash = sha256(prev_hash || convert_to(retention._audit_text(encoding, id, at, 'mallory', as_role, action, object, details), 'UTF8'))
 WHERE id = :last - 1;
SELECT valid, first_broken_id = :last AS names_the_next_row, problem ~ 'does not follow' AS unlinked
  FROM retention.verify_audit_log();
ROLLBACK;

-- what a hash covers is unambiguous: 1.0's encoding (fields joined by |)
-- made these two different rows hash alike; today's does not
SELECT e AS encoding,
	   retention._audit_text(e, 7, '2026-01-01 00:00+00', 'u', 'u', 'a|b', 'c', NULL)
	 = retention._audit_text(e, 7, '2026-01-01 00:00+00', 'u', 'u', 'a', 'b|c', NULL) AS split_elsewhere_collides,
	   retention._audit_text(e, 7, '2026-01-01 00:00+00', 'u', 'u', 'a', '', NULL)
	 = retention._audit_text(e, 7, '2026-01-01 00:00+00', 'u', 'u', 'a', NULL, NULL) AS null_is_empty,
	   retention._audit_text(e, 7, '2026-01-01 00:00+00', 'u', 'u', 'a', NULL, '{}')
	 = retention._audit_text(e, 7, '2026-01-01 00:00+00', 'u', 'u', 'a', '{}', NULL) AS object_is_details
  FROM (VALUES (1::smallint), (2::smallint)) v(e);
SELECT retention._audit_text(2::smallint, 7, '2026-01-01 00:00+00', 'u', 'v', 'set_window', 'x"y', '{"a": 1}');
-- new rows are written in it
SELECT encoding FROM retention.audit_log ORDER BY id DESC LIMIT 1;
-- and a row cannot be passed off as written in the older one: its hash
-- no longer matches
BEGIN;
ALTER TABLE retention.audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE retention.audit_log SET encoding = 1 WHERE id = 1;
SELECT valid, first_broken_id, problem
  FROM retention.verify_audit_log();
ROLLBACK;
-- nor forged in the older encoding, its hash recomputed, after newer rows
BEGIN;
ALTER TABLE retention.audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE retention.audit_log
   SET encoding = 1,
	   hash = sha256(prev_hash || convert_to(retention._audit_text(1::smallint, id, at, actor, as_role, action, object, details), 'UTF8'))
 WHERE id = :last;
SELECT valid, first_broken_id = :last AS names_the_row,
	   regexp_replace(problem, '[0-9]+', 'N', 'g') AS problem
  FROM retention.verify_audit_log();
ROLLBACK;
SELECT valid, rows_checked = :last AS all_rows, head_id = :last AS head
  FROM retention.verify_audit_log();

-- ordinary roles neither read nor write it
CREATE ROLE regress_audit_reader;
SET ROLE regress_audit_reader;
SELECT * FROM retention.audit_log;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO retention.audit_log VALUES (1000, now(), 'x', 'x', 'x', NULL, NULL, '\x', '\x');
\echo :LAST_ERROR_SQLSTATE
SELECT retention._audit('forged', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM retention.verify_audit_log();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_audit_reader;
