--
-- Security: the privilege matrix, and functions that cannot be subverted by
-- objects planted in the caller's search_path (SPEC 4)
--
\set SHOW_CONTEXT never
SET search_path = public;

-- the roles of the matrix: a role with nothing but CONNECT, a writer that
-- may only SELECT and INSERT (a CDR writer), the table's owner, a
-- pg_read_all_data member (a typical backup role), a retention_admin
-- member, a superuser
CREATE ROLE regress_owner;
CREATE ROLE regress_plain;
CREATE ROLE regress_writer;
CREATE ROLE regress_backup IN ROLE pg_read_all_data;
CREATE ROLE regress_admin IN ROLE retention_admin;
GRANT CREATE ON SCHEMA public TO regress_owner;
SET ROLE regress_owner;
CREATE TABLE sec_cdr (id int, caller retention.msisdn(billing, law_enforcement),
					  cell retention.cell(network_security), ended_at timestamptz);
GRANT SELECT, INSERT ON sec_cdr TO regress_writer;
RESET ROLE;

SELECT retention.protect('sec_cdr', 'ended_at', subscriber => 'caller');

-- every entry point, tried by a plain role, the table's owner, a
-- retention_admin member and a superuser, each attempt rolled back: allowed
-- (its own error, if any, in parentheses: the privilege check was passed)
-- or refused with 42501.  docs/privileges.md is this table.
CREATE TEMP TABLE stmts (n int, stmt text);
INSERT INTO stmts VALUES
	(1,  $q$SELECT * FROM retention.policy$q$),
	(2,  $q$SELECT retention.set_window('billing', '1 year')$q$),
	(3,  $q$SELECT retention.protect('sec_cdr', 'ended_at')$q$),
	(4,  $q$SELECT retention.unprotect('sec_cdr')$q$),
	(5,  $q$SELECT retention.set_method('sec_cdr', 'cell', 'generalize')$q$),
	(6,  $q$SELECT * FROM retention.tagged_columns('sec_cdr')$q$),
	(7,  $q$SELECT retention.anonymize('33611111111'::retention.msisdn, 'generalize')$q$),
	(8,  $q$SELECT retention.anonymize('33611111111'::retention.msisdn, 'hash')$q$),
	(9,  $q$SELECT * FROM retention.anonymize('sec_cdr'::regclass, subscriber => '33611111111')$q$),
	(10, $q$SELECT retention.hold('sec_cdr', '33611111111', now() - interval '1 day', now(), 'billing_dispute', 'INV')$q$),
	(11, $q$SELECT retention.release(1)$q$),
	(12, $q$SELECT retention.grant_consent('33611111111', now() + interval '1 day', now() + interval '1 year')$q$),
	(13, $q$SELECT retention.withdraw_consent('33611111111')$q$),
	(14, $q$SELECT retention.expose('sec_cdr', 'billing', 'regress_plain')$q$),
	(15, $q$SELECT retention.unexpose('sec_cdr', 'billing', 'regress_plain')$q$),
	(16, $q$CALL retention.sweep('sec_cdr')$q$),
	(17, $q$SELECT count(*) FROM retention.report()$q$),
	(18, $q$SELECT retention.verify()$q$),
	(19, $q$SELECT valid FROM retention.verify_audit_log()$q$),
	(20, $q$SELECT retention.rotate_key()$q$),
	(21, $q$SELECT retention.destroy_keys('100 years')$q$),
	(22, $q$SELECT count(*) FROM retention.export_keys()$q$),
	(23, $q$SELECT retention.import_key(1, '\x00', now(), NULL)$q$),
	(24, $q$SELECT count(*) FROM retention.key$q$),
	(25, $q$SELECT count(*) FROM retention.key_info$q$),
	(26, $q$SELECT count(*) FROM retention.audit_log$q$),
	(27, $q$SELECT count(*) FROM retention.sweep_log$q$),
	(28, $q$SELECT count(*) FROM retention.sweep_progress$q$),
	(29, $q$SELECT count(*) FROM retention.hold$q$),
	(30, $q$SELECT count(*) FROM retention.consent$q$),
	(31, $q$SELECT count(*) FROM retention.write_log$q$),
	(32, $q$SELECT count(*) FROM retention.protected_table$q$),
	(33, $q$SELECT count(*) FROM retention.exposure$q$),
	(34, $q$UPDATE retention.window_setting SET "window" = '2 years'$q$),
	(35, $q$DELETE FROM retention.protected_table$q$),
	(36, $q$DELETE FROM retention.column_method$q$),
	(37, $q$UPDATE retention.hold SET released_at = now()$q$),
	(38, $q$INSERT INTO retention.consent VALUES ('33611111111', 'infinity', 'infinity')$q$),
	(39, $q$INSERT INTO retention.audit_log VALUES (0, now(), 'x', 'x', 'x', NULL, NULL, '\x', '\x')$q$),
	(40, $q$DELETE FROM retention.audit_log$q$),
	(41, $q$ALTER TABLE sec_cdr DISABLE TRIGGER retention_expire_after$q$),
	(42, $q$DROP TRIGGER retention_expire_before ON sec_cdr$q$),
	(43, $q$INSERT INTO sec_cdr VALUES (1, '33611111111', '208-01-1-1', now() - interval '2 years')$q$),
	(44, $q$SELECT count(*) FROM retention.admins()$q$),
	(45, $q$SELECT retention._lock('sec_cdr', 'hold')$q$),
	(46, $q$SELECT retention._lock('sec_cdr', 'sweep', true)$q$),
	(47, $q$SELECT retention._is_admin()$q$),
	(48, $q$SELECT retention._audit('forged', NULL)$q$),
	(49, $q$SELECT retention._require_superuser('test')$q$),
	(50, $q$UPDATE retention.key SET retired_at = now()$q$),
	(51, $q$SELECT count(*) FROM sec_cdr$q$),
	(52, $q$SET retention.allow_drop_extension = on$q$);
GRANT SELECT ON stmts TO PUBLIC;
CREATE TEMP TABLE matrix (n int, who text, outcome text);
GRANT ALL ON matrix TO PUBLIC;
SET client_min_messages = error;
DO $$
DECLARE
	s		record;
	who		text;
	result	text;
BEGIN
	FOR s IN SELECT * FROM stmts ORDER BY n LOOP
		FOREACH who IN ARRAY ARRAY['regress_plain', 'regress_writer', 'regress_owner', 'regress_backup',
									'regress_admin', 'postgres'] LOOP
			BEGIN
				EXECUTE format('SET ROLE %I', who);
				EXECUTE s.stmt;
				RAISE EXCEPTION USING ERRCODE = 'RTOK1';	-- roll the success back
			EXCEPTION
				WHEN sqlstate 'RTOK1' THEN result := 'allowed';
				WHEN insufficient_privilege THEN result := 'refused';
				WHEN OTHERS THEN result := 'allowed (' || SQLSTATE || ')';
			END;
			RESET ROLE;
			INSERT INTO matrix VALUES (s.n, who, result);
		END LOOP;
	END LOOP;
END
$$;
RESET client_min_messages;
SELECT s.n, s.stmt,
	   max(m.outcome) FILTER (WHERE who = 'regress_plain') AS connect_only,
	   max(m.outcome) FILTER (WHERE who = 'regress_writer') AS writer,
	   max(m.outcome) FILTER (WHERE who = 'regress_owner') AS table_owner,
	   max(m.outcome) FILTER (WHERE who = 'regress_backup') AS read_all_data,
	   max(m.outcome) FILTER (WHERE who = 'regress_admin') AS retention_admin,
	   max(m.outcome) FILTER (WHERE who = 'postgres') AS superuser
  FROM stmts s JOIN matrix m USING (n) GROUP BY s.n, s.stmt ORDER BY s.n;

-- pg_read_all_data may SELECT from retention.key (row 24), but row security
-- leaves it no row; relations planted in the caller's temp schema are the
-- topic of temp_shadowing.sql, lock squatting of the isolation spec
-- lock_squatting
SET ROLE regress_backup;
SELECT count(*) AS key_rows_seen_by_read_all_data FROM retention.key;
RESET ROLE;

-- functions and operators planted in the caller's search_path are never
-- picked up by retention's SECURITY DEFINER functions, its triggers or its
-- sweep: each planted object raises if it is ever called
CREATE SCHEMA regress_trap;
CREATE FUNCTION regress_trap.trap() RETURNS void LANGUAGE plpgsql AS
	$$ BEGIN RAISE EXCEPTION 'planted object called'; END $$;
CREATE FUNCTION regress_trap.sha256(bytea) RETURNS bytea LANGUAGE plpgsql AS
	$$ BEGIN PERFORM regress_trap.trap(); RETURN NULL; END $$;
CREATE FUNCTION regress_trap.count(anyelement) RETURNS bigint LANGUAGE plpgsql AS
	$$ BEGIN PERFORM regress_trap.trap(); RETURN 0; END $$;
CREATE FUNCTION regress_trap.set_config(text, text, boolean) RETURNS text LANGUAGE plpgsql AS
	$$ BEGIN PERFORM regress_trap.trap(); RETURN NULL; END $$;
CREATE FUNCTION regress_trap.format(text, VARIADIC text[]) RETURNS text LANGUAGE plpgsql AS
	$$ BEGIN PERFORM regress_trap.trap(); RETURN NULL; END $$;
CREATE FUNCTION regress_trap.max(integer) RETURNS integer LANGUAGE plpgsql AS
	$$ BEGIN PERFORM regress_trap.trap(); RETURN NULL; END $$;
CREATE FUNCTION regress_trap.statement_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS
	$$ BEGIN PERFORM regress_trap.trap(); RETURN NULL; END $$;
CREATE FUNCTION regress_trap.to_timestamp(double precision) RETURNS timestamptz LANGUAGE plpgsql AS
	$$ BEGIN PERFORM regress_trap.trap(); RETURN NULL; END $$;CREATE FUNCTION regress_trap.now() RETURNS timestamptz LANGUAGE plpgsql AS
	$$ BEGIN PERFORM regress_trap.trap(); RETURN NULL; END $$;
CREATE FUNCTION regress_trap.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN PERFORM regress_trap.trap(); RETURN true; END $$;
CREATE OPERATOR regress_trap.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_trap.text_eq);
CREATE FUNCTION regress_trap.ts_le(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN PERFORM regress_trap.trap(); RETURN true; END $$;
CREATE OPERATOR regress_trap.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = regress_trap.ts_le);
-- moments computed beforehand: the statements below call nothing themselves
SELECT now() - interval '2 years' AS two_years_ago, now() - interval '5 months' AS five_months_ago,
	   now() - interval '1 year' AS year_ago, now() AS now, now() + interval '1 day' AS tomorrow,
	   now() + interval '1 year' AS next_year \gset
-- the trap first, pg_catalog after it
SET search_path = regress_trap, pg_catalog, public;
SELECT retention.set_window('network_security', '2 months');
SELECT retention.set_method('sec_cdr', 'cell', 'generalize');
INSERT INTO sec_cdr VALUES (1, '33611111111', '208-01-1-1', :'two_years_ago');	-- deleted at once
INSERT INTO sec_cdr VALUES (2, '33611111111', '208-01-1-1', :'five_months_ago');	-- cell generalized
SET session_replication_role = replica;
INSERT INTO sec_cdr VALUES (3, '33622222222', '208-01-1-1', :'two_years_ago');
RESET session_replication_role;
SELECT retention.hold('sec_cdr', '33611111111', :'year_ago', :'now', 'billing_dispute', 'INV-T') > 0 AS held;
SELECT retention.grant_consent('33611111111', :'tomorrow', :'next_year');
SET client_min_messages = warning;
CALL retention.sweep('sec_cdr');
RESET client_min_messages;
SELECT rows_anonymized, rows_deleted, rows_held, (SELECT jsonb_agg(k - 'until') FROM jsonb_array_elements(kept) k) AS kept_but_until
  FROM retention.anonymize('sec_cdr'::regclass, subscriber => '33611111111');
SELECT "column", overdue_rows FROM retention.report();
SELECT retention.verify();
SELECT retention.expose('sec_cdr', 'billing', 'regress_plain');
SELECT retention.unexpose('sec_cdr', 'billing', 'regress_plain');
SELECT valid FROM retention.verify_audit_log();
SELECT retention.withdraw_consent('33611111111');
SELECT retention.set_window('network_security', '3 months');
RESET search_path;
SET search_path = public;
-- what happened: row 1 never kept, row 3 swept, row 2 generalized
SELECT id, caller, cell FROM sec_cdr ORDER BY id;
DROP SCHEMA regress_trap CASCADE;

SELECT retention.unprotect('sec_cdr');
DROP TABLE sec_cdr;
DELETE FROM retention.hold;
DELETE FROM retention.consent;
REVOKE CREATE ON SCHEMA public FROM regress_owner;
DROP ROLE regress_owner, regress_plain, regress_writer, regress_backup, regress_admin;
RESET search_path;

-- DDL that would weaken retention: the table's owner may not disable or
-- drop the expiry triggers, change what a column is kept for, or touch the
-- columns protect() was given; a retention_admin may change purposes, and
-- that is audited
CREATE ROLE regress_owner2;
CREATE ROLE regress_admin2 IN ROLE retention_admin;
GRANT CREATE ON SCHEMA public TO regress_owner2;
SET ROLE regress_owner2;
CREATE TABLE guarded (caller retention.msisdn(billing), cell retention.cell(network_security),
					  ended_at timestamptz, due timestamptz);
RESET ROLE;
SELECT retention.protect('guarded', 'ended_at', subscriber => 'caller', billing_anchor => 'due');
SET ROLE regress_owner2;
ALTER TABLE guarded DISABLE TRIGGER retention_expire_after;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE guarded DISABLE TRIGGER ALL;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE guarded ENABLE REPLICA TRIGGER retention_expire_before;
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER retention_expire_before ON guarded;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE guarded ALTER COLUMN cell TYPE retention.cell(network_security, law_enforcement);
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE guarded ALTER COLUMN cell TYPE text;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE guarded RENAME COLUMN ended_at TO finished_at;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE guarded DROP COLUMN due;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE guarded ALTER COLUMN ended_at TYPE date;
\echo :LAST_ERROR_SQLSTATE
-- what the owner may do: add columns, drop a tagged column (erasure), rename the table
ALTER TABLE guarded ADD COLUMN duration integer, ADD COLUMN imsi retention.imsi(law_enforcement);
ALTER TABLE guarded DROP COLUMN cell;
ALTER TABLE guarded RENAME TO guarded_cdr;
RESET ROLE;
SELECT relid, columns FROM retention.protected_table WHERE relid = 'guarded_cdr'::regclass;
SELECT count(*) AS triggers_enabled FROM pg_trigger
 WHERE tgrelid = 'guarded_cdr'::regclass AND tgname LIKE 'retention%' AND tgenabled = 'A';
-- a retention_admin changes purposes: allowed, audited
SET ROLE regress_admin2;
SELECT retention.set_window('billing', '1 year');		-- (a harmless admin action)
RESET ROLE;
GRANT regress_owner2 TO regress_admin2;
SET ROLE regress_admin2;
ALTER TABLE guarded_cdr ALTER COLUMN imsi TYPE retention.imsi(law_enforcement, network_security);
RESET ROLE;
SELECT action, object, details FROM retention.audit_log WHERE action = 'retag' ORDER BY id DESC LIMIT 1;
-- dropping the table takes it out of the catalog, audited
DROP TABLE guarded_cdr;
SELECT count(*) AS still_registered FROM retention.protected_table WHERE relid::text LIKE '%guarded%';
SELECT action, object FROM retention.audit_log WHERE action = 'drop' ORDER BY id DESC LIMIT 1;
REVOKE CREATE ON SCHEMA public FROM regress_owner2;
DROP ROLE regress_owner2, regress_admin2;
