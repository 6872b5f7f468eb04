--
-- retention_auditor: reads the report, verify(), the audit log and its
-- verification, the sweep and write logs, the holds register (without the
-- subscriber), consents as counts, the policy and the metrics; changes
-- nothing.  Its one write, record_dossier(), is an audited append.
--
\set SHOW_CONTEXT never
SET search_path = public;

SELECT rolcanlogin, rolsuper, rolinherit FROM pg_roles WHERE rolname = 'retention_auditor';
CREATE ROLE regress_auditor IN ROLE retention_auditor;
CREATE ROLE regress_aud_owner;
GRANT CREATE ON SCHEMA public TO regress_aud_owner;
SET ROLE regress_aud_owner;
CREATE TABLE aud_cdr (id int, caller retention.msisdn(billing, law_enforcement),
					  cell retention.cell(network_security), ended_at timestamptz);
RESET ROLE;
INSERT INTO aud_cdr SELECT i, '+3361111111' || (i % 10), '208-01-1-' || i, now() - i * interval '1 month'
  FROM generate_series(1, 14) i;
SELECT retention.protect('aud_cdr', 'ended_at', subscriber => 'caller');
SELECT retention.hold('aud_cdr', '+33611111113', now() - interval '2 years', now(), 'judicial_request',
					  'PV 2026/0001', now() + interval '1 month');
SELECT retention.grant_consent('+33611111114', now() + interval '1 month', now() + interval '1 year');
SELECT retention.grant_consent('+33611111115', now() + interval '1 month', now() + interval '1 year');
SELECT retention.withdraw_consent('+33611111115');
CALL retention.sweep();

-- every entry point as the auditor, each attempt rolled back: allowed, or
-- refused with its SQLSTATE and message
CREATE TEMP TABLE stmts (n int, stmt text);
INSERT INTO stmts VALUES
	(1,  $q$SELECT count(*) FROM retention.policy$q$),
	(2,  $q$SELECT count(*) FROM retention.report()$q$),
	(3,  $q$SELECT retention.verify()$q$),
	(4,  $q$SELECT valid FROM retention.verify_audit_log()$q$),
	(5,  $q$SELECT count(*) FROM retention.audit_log$q$),
	(6,  $q$SELECT count(*) FROM retention.sweep_log$q$),
	(7,  $q$SELECT count(*) FROM retention.sweep_progress$q$),
	(8,  $q$SELECT count(*) FROM retention.write_log$q$),
	(9,  $q$SELECT id, relid, reason, reference, from_ts, to_ts, until, released_at FROM retention.hold$q$),
	(10, $q$SELECT subscriber FROM retention.hold$q$),
	(11, $q$SELECT * FROM retention.hold$q$),
	(12, $q$SELECT * FROM retention.consent_summary$q$),
	(13, $q$SELECT count(*) FROM retention.consent$q$),
	(14, $q$SELECT count(*) FROM retention.metrics$q$),
	(15, $q$SELECT count(*) FROM retention.protected_table$q$),
	(16, $q$SELECT count(*) FROM retention.key_info$q$),
	(17, $q$SELECT count(*) FROM retention.key$q$),
	(18, $q$SELECT count(*) FROM aud_cdr$q$),
	(19, $q$SELECT retention.set_window('billing', '6 months')$q$),
	(20, $q$SELECT retention.protect('aud_cdr', 'ended_at')$q$),
	(21, $q$SELECT retention.unprotect('aud_cdr')$q$),
	(22, $q$SELECT retention.set_method('aud_cdr', 'cell', 'generalize')$q$),
	(23, $q$SELECT retention.hold('aud_cdr', '33611111111', now() - interval '1 day', now(), 'billing_dispute', 'INV')$q$),
	(24, $q$SELECT retention.release(1)$q$),
	(25, $q$SELECT retention.grant_consent('33611111111', now() + interval '1 day', now() + interval '1 year')$q$),
	(26, $q$SELECT retention.withdraw_consent('33611111114')$q$),
	(27, $q$SELECT * FROM retention.anonymize('aud_cdr'::regclass, subscriber => '33611111111')$q$),
	(28, $q$SELECT retention.anonymize('33611111111'::retention.msisdn, 'hash')$q$),
	(29, $q$SELECT retention.expose('aud_cdr', 'billing', 'regress_auditor')$q$),
	(30, $q$CALL retention.sweep('aud_cdr')$q$),
	(31, $q$SELECT retention.rotate_key()$q$),
	(32, $q$SELECT count(*) FROM retention.export_keys()$q$),
	(33, $q$UPDATE retention.hold SET released_at = now()$q$),
	(34, $q$DELETE FROM retention.sweep_log$q$),
	(35, $q$INSERT INTO retention.write_log VALUES (now(), 'aud_cdr', 'deleted', 1)$q$),
	(36, $q$INSERT INTO retention.audit_log VALUES (0, now(), 'x', 'x', 'x', NULL, NULL, '\x', '\x')$q$),
	(37, $q$SELECT retention._audit('forged', NULL)$q$),
	(38, $q$UPDATE retention.window_setting SET "window" = '2 years'$q$),
	(39, $q$UPDATE aud_cdr SET caller = NULL$q$),
	(40, $q$SELECT retention.record_dossier(repeat('ab', 32))$q$),
	(41, $q$SELECT length(retention.dossier())$q$),
	(42, $q$SELECT count(*) FROM retention.hold WHERE subscriber = '33611111113'$q$),
	(43, $q$SELECT count(*) FROM retention.consent_summary WHERE state = 'active'$q$);
GRANT SELECT ON stmts TO PUBLIC;
CREATE TEMP TABLE outcome (n int, outcome text);
GRANT ALL ON outcome TO PUBLIC;
SET client_min_messages = error;
DO $$
DECLARE
	s		record;
	result	text;
BEGIN
	FOR s IN SELECT * FROM stmts ORDER BY n LOOP
		BEGIN
			SET ROLE regress_auditor;
			EXECUTE s.stmt;
			RAISE EXCEPTION USING ERRCODE = 'RTOK1';	-- roll the success back
		EXCEPTION
			WHEN sqlstate 'RTOK1' THEN result := 'allowed';
			WHEN OTHERS THEN result := SQLSTATE || ': ' || SQLERRM;
		END;
		RESET ROLE;
		INSERT INTO outcome VALUES (s.n, result);
	END LOOP;
END
$$;
RESET client_min_messages;
SELECT n, stmt, outcome FROM stmts JOIN outcome USING (n) ORDER BY n;

-- what the auditor sees
SET ROLE regress_auditor;
SELECT * FROM retention.consent_summary;
SELECT relid, reason, reference, until > now() AS in_force, released_at FROM retention.hold;
SELECT "column", kind, overdue_rows, held_rows FROM retention.report() WHERE kind = 'tagged' ORDER BY 1;
SELECT relid, status, rows_held FROM retention.sweep_log;
SELECT metric, "table", value FROM retention.metrics
 WHERE metric NOT IN ('oldest_clear_age_seconds', 'last_sweep_age_seconds', 'audit_rows');
SELECT metric, value > 0 AS positive FROM retention.metrics
 WHERE metric IN ('oldest_clear_age_seconds', 'last_sweep_age_seconds', 'audit_rows');
-- recording a dossier's hash is the auditor's one write, audited as such
SELECT retention.record_dossier('0f343b0931126a20f133d67c2b018a3b5f1c4d6e7a8b9c0d1e2f3a4b5c6d7e8f') > 0 AS recorded;
SELECT retention.record_dossier('0F343B09');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.record_dossier(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.record_dossier(repeat('ab', 32), now(), 'not a digest');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT actor, as_role, action, object, details FROM retention.audit_log ORDER BY id DESC LIMIT 1;
SELECT valid FROM retention.verify_audit_log();

-- an overdue value shows in verify(), which the auditor may run
ALTER TABLE aud_cdr DISABLE TRIGGER USER;
SET ROLE regress_auditor;
SELECT retention.verify();
\echo :LAST_ERROR_SQLSTATE
SELECT metric, value FROM retention.metrics WHERE metric = 'not_enforced';
RESET ROLE;

-- a plain role reads none of it
CREATE ROLE regress_nobody;
SET ROLE regress_nobody;
SELECT * FROM retention.consent_summary;
SELECT * FROM retention.metrics;
SELECT retention.record_dossier(repeat('ab', 32));
SELECT retention.dossier();
RESET ROLE;

SELECT retention.unprotect('aud_cdr');
DROP TABLE aud_cdr;
DROP ROLE regress_auditor, regress_nobody;
REVOKE CREATE ON SCHEMA public FROM regress_aud_owner;
DROP ROLE regress_aud_owner;
