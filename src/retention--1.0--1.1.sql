/* src/retention--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION retention UPDATE TO '1.1'" to load this file. \quit

/*
 * retention 1.1: what changed since the released 1.0.
 *
 * 1.0 is released and its script (retention--1.0.sql) is never edited.  A
 * new install of 1.1 runs that script and then this one (CREATE EXTENSION
 * follows the update path when no retention--1.1.sql exists), so a fresh
 * install and an upgraded database run the same statements: test/t/
 * 014_upgrade.pl checks that the two end up alike, and that an upgraded
 * database keeps its data, holds, consents, keys and audit chain.
 *
 * Each section below names the change it makes and why.
 */

--------------------------------------------------------------------------
-- No pseudonym oracle (method hash)
--
-- A role that may both write a table and read a hashed column back could
-- learn the pseudonym of a value of its choosing: write the value, let it
-- fall due, read it.  The expiry triggers never hash a value a writer
-- supplies (they erase it instead; only a value that rested in the table
-- until its deadline is hashed, by a sweep), and set_method() refuses
-- "hash" on a column that such a role could read; verify() raises if one
-- appears later (a GRANT, a new member).  Roles that may call hash anyway
-- (superusers, retention_admin members) are not counted.
--------------------------------------------------------------------------

-- the roles that could read back the pseudonym of a value they wrote into
-- column col of tbl: they can write the table (INSERT or UPDATE, by any
-- role they may become) and read the column (from the table, or from one
-- of its purpose-bound views), and may not call hash themselves
CREATE FUNCTION retention._pseudonym_oracles(tbl regclass, col name)
RETURNS SETOF name
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT r.rolname
	  FROM pg_catalog.pg_roles r
	 WHERE NOT r.rolsuper
	   AND NOT pg_catalog.pg_has_role(r.oid, 'retention_admin', 'MEMBER')
	   AND r.rolname NOT LIKE 'pg\_%'
	   AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles w
				    WHERE pg_catalog.pg_has_role(r.oid, w.oid, 'MEMBER')
					  AND (pg_catalog.has_table_privilege(w.oid, tbl, 'INSERT')
						   OR pg_catalog.has_table_privilege(w.oid, tbl, 'UPDATE')))
	   AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles s
				    WHERE pg_catalog.pg_has_role(r.oid, s.oid, 'MEMBER')
					  AND (pg_catalog.has_column_privilege(s.oid, tbl, col, 'SELECT')
						   OR EXISTS (SELECT 1 FROM retention.exposure e
									   JOIN pg_catalog.pg_attribute a
										 ON a.attrelid = pg_catalog.to_regclass(e.view_name::text)
										AND a.attname = col AND NOT a.attisdropped
									  WHERE e.relid = tbl
										AND pg_catalog.has_table_privilege(s.oid, a.attrelid, 'SELECT'))))
	 ORDER BY r.rolname
$$;
REVOKE ALL ON FUNCTION retention._pseudonym_oracles(regclass, name) FROM PUBLIC;

CREATE OR REPLACE FUNCTION retention.set_method(tbl regclass, "column" name, method text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	t		record;
	a		pg_catalog.pg_attribute;
	old		text;
	oracles	name[];
BEGIN
	IF NOT EXISTS (SELECT 1 FROM retention.protected_table WHERE relid = tbl) THEN
		RAISE EXCEPTION 'table % is not protected', tbl
			USING ERRCODE = 'undefined_object',
				  HINT = 'Protect it first with retention.protect().';
	END IF;
	a := retention._column(tbl, "column", 'tagged');
	SELECT * INTO t FROM retention.tagged_columns(tbl) c WHERE c.attname = set_method."column";
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of relation % is not purpose-tagged', "column", tbl
			USING ERRCODE = 'datatype_mismatch';
	END IF;
	IF method IS NULL OR method NOT IN ('erase', 'generalize', 'hash') THEN
		RAISE EXCEPTION 'unknown anonymization method "%"', method
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Valid methods are erase, generalize and hash.';
	END IF;
	-- (issue 17) generalize applies to ident too: an IP address keeps its
	-- /24 or /48 prefix, any other identifier is erased
	IF method <> 'erase' AND EXISTS (
			SELECT 1 FROM pg_catalog.pg_constraint con
			 WHERE con.conrelid = tbl AND con.contype IN ('f', 'c') AND a.attnum = ANY (con.conkey)) THEN
		RAISE EXCEPTION 'column "%" of relation % is constrained', "column", tbl
			USING ERRCODE = 'invalid_table_definition',
				  DETAIL = format('A %s value may violate its foreign key or check constraint, and writers must never fail.', method),
				  HINT = 'Use erase, or drop the constraint.';
	END IF;
	IF method = 'hash' THEN
		oracles := ARRAY(SELECT retention._pseudonym_oracles(tbl, "column"));
		IF cardinality(oracles) > 0 THEN
			RAISE EXCEPTION 'column "%" of relation % cannot be hashed', "column", tbl
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  DETAIL = format('Role %s can both write the table and read the column, and so could read back the pseudonym of a value of its choosing.',
									  array_to_string(oracles, ', ')),
					  HINT = 'Take away its write or read privilege, or use erase or generalize.';
		END IF;
	END IF;
	SELECT m.method INTO old FROM retention.column_method m
	 WHERE m.relid = tbl AND m.attname = set_method."column";
	IF method = 'erase' THEN
		DELETE FROM retention.column_method m WHERE m.relid = tbl AND m.attname = set_method."column";
	ELSE
		INSERT INTO retention.column_method AS m VALUES (tbl, "column", method)
			ON CONFLICT (relid, attname) DO UPDATE SET method = excluded.method;
	END IF;
	PERFORM retention._audit('set_method', format('%s.%I', tbl, "column"),
							 jsonb_build_object('old', coalesce(old, 'erase'), 'new', method));
END
$$;

-- every hashed column that some role could turn into a pseudonym oracle
CREATE FUNCTION retention._pseudonym_oracles(
	OUT relid regclass, OUT attname name, OUT roles name[])
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT m.relid, m.attname, o.roles
	  FROM retention.column_method m
	 CROSS JOIN LATERAL (SELECT ARRAY(SELECT retention._pseudonym_oracles(m.relid, m.attname)) AS roles) o
	 WHERE m.method = 'hash' AND cardinality(o.roles) > 0
	 ORDER BY m.relid::text, m.attname
$$;
REVOKE ALL ON FUNCTION retention._pseudonym_oracles() FROM PUBLIC;

--------------------------------------------------------------------------
-- A consent withdrawal never fails
--
-- The withdrawal is recorded first; then, table by table, what was kept
-- for marketing only goes at once.  A table whose subscriber column cannot
-- hold this subscriber (another type: an IMSI column asked for an MSISDN)
-- has nothing of theirs; a table that fails (a lock, an error) is left to
-- the next sweep, which finds the consent withdrawn.  Neither undoes the
-- withdrawal: both are named in a WARNING and in the audit row.
--------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION retention.withdraw_consent(subscriber text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	v			text := retention._consent_subscriber(subscriber);
	p			record;
	sv			text;
	n			bigint := 0;
	changed		bigint;
	unmatched	text[] := '{}';
	failed		text[] := '{}';
	unenforced	text[] := '{}';
	state		text;
BEGIN
	UPDATE retention.consent c SET withdrawn_at = now()
	 WHERE c.subscriber = v AND c.withdrawn_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'subscriber has no consent to withdraw'
			USING ERRCODE = 'undefined_object';
	END IF;
	-- what was kept for marketing only goes now, not at the next sweep
	FOR p IN SELECT pt.relid FROM retention.protected_table pt
			  WHERE pt.subscriber IS NOT NULL
				AND EXISTS (SELECT 1 FROM retention.tagged_columns(pt.relid) t
							 WHERE 'marketing' = ANY (t.purposes))
			  ORDER BY pt.relid::text LOOP
		-- a Citus table: no anonymize(), and no sweep, reaches its rows
		IF retention._citus_problem(p.relid) IS NOT NULL THEN
			unenforced := unenforced || p.relid::text;
			CONTINUE;
		END IF;
		BEGIN
			sv := retention._subscriber_value(p.relid, v);
		EXCEPTION WHEN invalid_text_representation THEN
			unmatched := unmatched || p.relid::text;
			CONTINUE;
		END;
		BEGIN
			SELECT a.rows_anonymized + a.rows_deleted INTO changed
			  FROM retention._anonymize_subscriber(p.relid, sv, false) a;
			n := n + changed;
		EXCEPTION WHEN query_canceled OR admin_shutdown THEN
			RAISE;
		WHEN OTHERS THEN
			-- the SQLSTATE only: a message or its detail may quote a value
			GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
			failed := failed || format('%s (SQLSTATE %s)', p.relid, state);
		END;
	END LOOP;
	IF cardinality(unmatched) > 0 THEN
		RAISE WARNING 'the subscriber cannot be matched in % of the tables kept for marketing',
			cardinality(unmatched)
			USING DETAIL = format('Their subscriber column is of a type this subscriber is not valid for: %s.',
								  array_to_string(unmatched, ', ')),
				  HINT = 'Withdraw the consent under the identifier those tables use too.';
	END IF;
	IF cardinality(failed) > 0 THEN
		RAISE WARNING 'marketing data of the subscriber could not be anonymized at once in % tables',
			cardinality(failed)
			USING DETAIL = format('The consent is withdrawn; the next sweep anonymizes them: %s.',
								  array_to_string(failed, '; ')),
				  HINT = 'Run CALL retention.sweep() and check retention.sweep_log.';
	END IF;
	IF cardinality(unenforced) > 0 THEN
		RAISE WARNING 'marketing data of the subscriber is not anonymized in % tables that retention does not enforce',
			cardinality(unenforced)
			USING DETAIL = format('The consent is withdrawn, but Citus manages these tables and no sweep reaches their rows: %s.',
								  array_to_string(unenforced, ', ')),
				  HINT = 'See retention.report(), rows of kind "not enforced", and docs/citus.md.';
	END IF;
	PERFORM retention._audit('withdraw_consent', NULL,
							 jsonb_strip_nulls(jsonb_build_object(
								'rows_changed', n,
								'tables_unmatched', CASE WHEN cardinality(unmatched) > 0 THEN to_jsonb(unmatched) END,
								'tables_failed', CASE WHEN cardinality(failed) > 0 THEN to_jsonb(failed) END,
								'tables_not_enforced', CASE WHEN cardinality(unenforced) > 0 THEN to_jsonb(unenforced) END)));
END
$$;

--------------------------------------------------------------------------
-- Audit log: an unambiguous encoding of what each row's hash covers
--
-- 1.0 hashed its fields joined with '|', unescaped, and a NULL object or
-- details as '': two different rows (an action or object containing '|',
-- a NULL against an empty string) could hash alike.  From 1.1 a row's hash
-- covers a JSON array of its fields, tagged with the encoding, in which
-- every field is quoted or null.  Rows written before the upgrade keep
-- encoding 1 and still verify as written; the chain continues across the
-- upgrade, and an encoding never goes back to an older one along it.
--------------------------------------------------------------------------

-- rows restored from a 1.0 dump carry no encoding: they are 1.0's.  (The
-- exposure event triggers are off meanwhile: they would rebuild every
-- purpose-bound view of the database, inside this script, making the
-- views members of the extension.)
ALTER EVENT TRIGGER retention_exposures_before_alter DISABLE;
ALTER EVENT TRIGGER retention_exposures_after_alter DISABLE;
ALTER TABLE retention.audit_log ADD COLUMN encoding smallint NOT NULL DEFAULT 1
	CHECK (encoding IN (1, 2));
COMMENT ON COLUMN retention.audit_log.encoding IS
	'How the row''s hash covers its fields: 1 (retention 1.0, fields joined by |) or 2 (a JSON array)';
ALTER EVENT TRIGGER retention_exposures_before_alter ENABLE;
ALTER EVENT TRIGGER retention_exposures_after_alter ENABLE;

-- the text a row's hash covers, in the row's encoding: independent of
-- session settings.  In PL/pgSQL, whose plans last the session: a SQL
-- function with a SET clause is parsed and planned again in every
-- transaction that calls it, and the sweep writes an entry per table and
-- run.
CREATE FUNCTION retention._audit_text(encoding smallint, id bigint, at timestamptz,
									  actor name, as_role name, action text, object text,
									  details jsonb)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN CASE encoding
		WHEN 1 THEN retention._audit_text(id, at, actor, as_role, action, object, details)
		WHEN 2 THEN pg_catalog.jsonb_build_array(
						'retention audit 2', id,
						pg_catalog.to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
						actor::text, as_role::text, action, object, details)::text
	END;
END
$$;

CREATE OR REPLACE FUNCTION retention._audit(action text, object text, details jsonb DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	last_id		bigint;
	last_hash	bytea;
	new_id		bigint;
	new_at		timestamptz := pg_catalog.clock_timestamp();
	who			name := session_user;
	whom		name := retention._outer_role();
	new_hash	bytea;
BEGIN
	-- conflicts with itself, not with readers
	LOCK TABLE retention.audit_log IN SHARE ROW EXCLUSIVE MODE;
	SELECT l.id, l.hash INTO last_id, last_hash
	  FROM retention.audit_log l ORDER BY l.id DESC LIMIT 1;
	new_id := coalesce(last_id, 0) + 1;
	last_hash := coalesce(last_hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
	new_hash := pg_catalog.sha256(last_hash ||
		pg_catalog.convert_to(retention._audit_text(2::smallint, new_id, new_at, who, whom,
													 action, object, details), 'UTF8'));
	INSERT INTO retention.audit_log (id, at, actor, as_role, action, object, details,
									 prev_hash, hash, encoding)
	VALUES (new_id, new_at, who, whom, action, object, details, last_hash, new_hash, 2);
	RETURN new_id;
END
$$;

CREATE OR REPLACE FUNCTION retention.verify_audit_log(
	OUT valid boolean,
	OUT rows_checked bigint,
	OUT first_broken_id bigint,
	OUT problem text,
	OUT head_id bigint,
	OUT head_hash text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	r			record;
	prev_id		bigint := 0;
	prev_enc	smallint := 1;
	prev		bytea := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
BEGIN
	valid := true;
	rows_checked := 0;
	FOR r IN SELECT * FROM retention.audit_log ORDER BY id LOOP
		IF r.id <> prev_id + 1 THEN
			problem := CASE WHEN r.id > prev_id + 1
							THEN format('row %s is missing', prev_id + 1)
							ELSE format('row %s appears twice', r.id) END;
			first_broken_id := prev_id + 1;
		ELSIF r.prev_hash <> prev THEN
			problem := format('row %s does not follow row %s', r.id, prev_id);
			first_broken_id := r.id;
		ELSIF r.encoding < prev_enc THEN
			problem := format('row %s is in an older encoding than row %s', r.id, prev_id);
			first_broken_id := r.id;
		ELSIF r.hash IS DISTINCT FROM pg_catalog.sha256(prev ||
				pg_catalog.convert_to(retention._audit_text(r.encoding, r.id, r.at, r.actor, r.as_role,
															 r.action, r.object, r.details), 'UTF8')) THEN
			problem := format('row %s was changed after it was written', r.id);
			first_broken_id := r.id;
		END IF;
		IF problem IS NOT NULL THEN
			valid := false;
			EXIT;
		END IF;
		rows_checked := rows_checked + 1;
		prev_id := r.id;
		prev_enc := r.encoding;
		prev := r.hash;
	END LOOP;
	head_id := nullif(prev_id, 0);
	head_hash := CASE WHEN prev_id > 0 THEN encode(prev, 'hex') END;
END
$$;

--------------------------------------------------------------------------
-- Legal regimes (issue 15): the law as data
--
-- What each purpose keeps, for how long and on what condition is a rule of
-- a legal regime, a versioned set of rules.  Two regimes ship: fr-2004,
-- CPCE L34-1 as first written (the seed's text, what 1.0 enforces), and
-- fr-2025, L34-1 as rewritten in 2021 and 2025 (the default of a new
-- install).  A database upgraded from 1.0 keeps fr-2004 until a
-- retention_admin member runs retention.set_regime().  The rules
-- (policy.c) read the regime in force through retention.policy and
-- retention._coverage(); a rule has a floor as well as a ceiling: what
-- must be kept is never erased before it.
--
-- The regimes, rules and aliases are the law: recreated by CREATE
-- EXTENSION, never dumped, and compared by verify() with what this script
-- shipped.  The choice of regime and the declared legal bases (decrees)
-- are the operator's: dumped.
--------------------------------------------------------------------------

-- the purposes of today's text, next to the seed's four
INSERT INTO retention.purpose VALUES
	('connection',			'1 year',	'1 year',	'CPCE L34-1 II bis 3° and R10-13 IV'),
	('national_security',	'1 year',	'1 year',	'CPCE L34-1 III and R10-13 V'),
	('location',			NULL,		NULL,		'CPCE L34-1 V'),
	('identity',			'5 years',	'5 years',	'CPCE L34-1 II bis 1° and R10-13 I'),
	('account',				'1 year',	'1 year',	'CPCE L34-1 II bis 2° and R10-13 II'),
	('payment',				'1 year',	'1 year',	'CPCE L34-1 II bis 2° and R10-13 III');

CREATE TABLE retention.regime (
	code			text PRIMARY KEY,
	title			text NOT NULL,
	enacted			date NOT NULL,
	superseded_by	text REFERENCES retention.regime
);
COMMENT ON TABLE retention.regime IS
	'The legal regimes retention can enforce: versioned sets of rules';

CREATE TABLE retention.rule (
	regime			text NOT NULL REFERENCES retention.regime,
	purpose			text NOT NULL REFERENCES retention.purpose,
	kind			text NOT NULL CHECK (kind IN ('must_keep', 'may_keep')),
	floor			interval,
	ceiling			interval,
	default_window	interval,
	anchor			text NOT NULL
		CHECK (anchor IN ('communication', 'billing_anchor', 'contract_end')),
	condition		text NOT NULL
		CHECK (condition IN ('none', 'consent', 'location_consent', 'decree', 'originated')),
	covers			text[] NOT NULL,
	citation		text NOT NULL,
	PRIMARY KEY (regime, purpose),
	CHECK ((kind = 'must_keep') = (floor IS NOT NULL)),
	CHECK ((ceiling IS NULL) = (condition IN ('consent', 'location_consent'))),
	CHECK (floor <= default_window AND default_window <= ceiling)
);
COMMENT ON TABLE retention.rule IS
	'Per regime and purpose: must or may keep, floor, ceiling, default window, anchor, condition, the types it covers, and the paragraph in force';

-- how a tagged purpose that has no rule of its own in a regime reads there
CREATE TABLE retention.rule_alias (
	regime			text NOT NULL,
	purpose			text NOT NULL REFERENCES retention.purpose,
	type			text NOT NULL,
	rule			text NOT NULL,
	PRIMARY KEY (regime, purpose, type),
	FOREIGN KEY (regime, rule) REFERENCES retention.rule
);
COMMENT ON TABLE retention.rule_alias IS
	'How a purpose of another regime reads in this one, per tagged type (fr-2025 reads law_enforcement as connection or national_security)';

-- the regimes and their rules as shipped: verify() compares the tables
-- with these
CREATE FUNCTION retention._shipped_regimes()
RETURNS SETOF retention.regime
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	VALUES
	('fr-2004', 'CPCE L34-1 as first written (L32-3-1 of 2001, L34-1 since 2004)', date '2004-07-09', 'fr-2025'),
	('fr-2025', 'CPCE L34-1 as rewritten by loi 2021-998 (art. 17) and loi 2025-532', date '2025-06-13', NULL)
$$;

CREATE FUNCTION retention._shipped_rules()
RETURNS SETOF retention.rule
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	VALUES
	-- the seed's text: ceilings only, numbering of L32-3-1
	('fr-2004', 'billing', 'may_keep', NULL::interval, interval '1 year', interval '1 year', 'billing_anchor', 'none',
	 '{msisdn,imsi,imei,cell,ident}'::text[], 'CPCE L34-1 III ¶1 and L34-2 (text of 2004)'),
	('fr-2004', 'law_enforcement', 'may_keep', NULL, interval '1 year', interval '1 year', 'communication', 'none',
	 '{msisdn,imsi,imei,cell,ident}', 'CPCE L34-1 II (text of 2004)'),
	('fr-2004', 'marketing', 'may_keep', NULL, NULL, NULL, 'communication', 'consent',
	 '{msisdn,imsi,imei,cell,ident}', 'CPCE L34-1 III ¶2 (text of 2004)'),
	('fr-2004', 'network_security', 'may_keep', NULL, interval '3 months', interval '3 months', 'communication', 'none',
	 '{msisdn,imsi,imei,cell,ident}', 'CPCE L34-1 III ¶3 and R10-14 IV (text of 2004)'),
	-- today's text
	('fr-2025', 'connection', 'must_keep', interval '1 year', interval '1 year', interval '1 year', 'communication', 'none',
	 '{msisdn,imsi,imei,ident}', 'CPCE L34-1 II bis 3° and R10-13 IV'),
	('fr-2025', 'national_security', 'must_keep', interval '1 year', interval '1 year', interval '1 year', 'communication', 'decree',
	 '{msisdn,imsi,imei,cell,ident}', 'CPCE L34-1 III and R10-13 V'),
	('fr-2025', 'billing', 'may_keep', NULL, interval '1 year', interval '1 year', 'billing_anchor', 'originated',
	 '{msisdn,imsi,imei,cell,ident}', 'CPCE L34-1 IV ¶1, R10-14 I to III and L34-2'),
	('fr-2025', 'network_security', 'may_keep', NULL, interval '3 months', interval '3 months', 'communication', 'none',
	 '{msisdn,imsi,imei,cell,ident}', 'CPCE L34-1 IV ¶2 and R10-14 IV'),
	('fr-2025', 'marketing', 'may_keep', NULL, NULL, NULL, 'communication', 'consent',
	 '{msisdn,imsi,imei,cell,ident}', 'CPCE L34-1 IV ¶2'),
	('fr-2025', 'location', 'may_keep', NULL, NULL, NULL, 'communication', 'location_consent',
	 '{cell,ident}', 'CPCE L34-1 V'),
	('fr-2025', 'identity', 'must_keep', interval '5 years', interval '5 years', interval '5 years', 'contract_end', 'none',
	 '{msisdn,ident}', 'CPCE L34-1 II bis 1° and R10-13 I'),
	('fr-2025', 'account', 'must_keep', interval '1 year', interval '1 year', interval '1 year', 'contract_end', 'none',
	 '{msisdn,imsi,imei,ident}', 'CPCE L34-1 II bis 2° and R10-13 II'),
	('fr-2025', 'payment', 'must_keep', interval '1 year', interval '1 year', interval '1 year', 'contract_end', 'none',
	 '{ident}', 'CPCE L34-1 II bis 2° and R10-13 III')
$$;

CREATE FUNCTION retention._shipped_rule_aliases()
RETURNS SETOF retention.rule_alias
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	-- 1.0's law_enforcement: the source of the connection and the
	-- terminal (II bis 3°) where the type can be one, location (III)
	-- where it is a cell
	VALUES ('fr-2025', 'law_enforcement', 'msisdn', 'connection'),
		   ('fr-2025', 'law_enforcement', 'imsi', 'connection'),
		   ('fr-2025', 'law_enforcement', 'imei', 'connection'),
		   ('fr-2025', 'law_enforcement', 'ident', 'connection'),
		   ('fr-2025', 'law_enforcement', 'cell', 'national_security')
$$;

INSERT INTO retention.regime SELECT * FROM retention._shipped_regimes() WHERE superseded_by IS NULL;
INSERT INTO retention.regime SELECT * FROM retention._shipped_regimes() WHERE superseded_by IS NOT NULL;
INSERT INTO retention.rule SELECT * FROM retention._shipped_rules();
INSERT INTO retention.rule_alias SELECT * FROM retention._shipped_rule_aliases();
CREATE TRIGGER rule_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON retention.rule
	FOR EACH STATEMENT EXECUTE FUNCTION retention._catalog_changed();
CREATE TRIGGER rule_alias_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON retention.rule_alias
	FOR EACH STATEMENT EXECUTE FUNCTION retention._catalog_changed();

-- the regime in force: a row only once one was chosen (an upgrade from
-- 1.0, set_regime()); without one, fr-2025.  Dumped.
CREATE TABLE retention.regime_setting (
	single			boolean PRIMARY KEY DEFAULT true CHECK (single),
	regime			text NOT NULL REFERENCES retention.regime,
	set_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	set_by			name NOT NULL DEFAULT session_user
);
SELECT pg_catalog.pg_extension_config_dump('retention.regime_setting', '');
CREATE TRIGGER regime_setting_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON retention.regime_setting
	FOR EACH STATEMENT EXECUTE FUNCTION retention._catalog_changed();

-- an upgrade from 1.0 keeps what 1.0 enforced; a new install (whose 1.0
-- objects this transaction created) gets today's law
DO $$
BEGIN
	IF (SELECT p.xmin FROM pg_catalog.pg_proc p
		 WHERE p.oid = 'retention.purposes_in(cstring[])'::pg_catalog.regprocedure)::text
	   <> pg_catalog.pg_current_xact_id()::text THEN
		INSERT INTO retention.regime_setting (regime, set_by) VALUES ('fr-2004', 'ALTER EXTENSION');
		PERFORM retention._audit('set_regime', 'fr-2004',
								 pg_catalog.jsonb_build_object('old', NULL, 'new', 'fr-2004',
															   'why', 'upgraded from 1.0, which enforces fr-2004'));
	END IF;
END
$$;

CREATE FUNCTION retention.regime_in_force()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT coalesce((SELECT s.regime FROM retention.regime_setting s), 'fr-2025')
$$;
COMMENT ON FUNCTION retention.regime_in_force() IS
	'The code of the legal regime whose rules retention applies';

-- the regime in force, with its rules: what the C module reads.  A
-- window set under another regime counts only within this one's floor
-- and ceiling (the rules clamp it; set_window() refuses outside them).
-- (CREATE OR REPLACE: 1.0's exposure views depend on it until rebuilt)
CREATE OR REPLACE VIEW retention.policy AS
	SELECT r.purpose,
		   coalesce(s."window", r.default_window) AS "window",
		   r.ceiling,
		   r.citation AS legal_basis,
		   r.kind,
		   r.floor,
		   r.anchor,
		   r.condition,
		   r.covers,
		   r.regime
	  FROM retention.rule r
	  LEFT JOIN retention.window_setting s USING (purpose)
	 WHERE r.regime = retention.regime_in_force()
	 ORDER BY r.purpose;
COMMENT ON VIEW retention.policy IS
	'The rules of the legal regime in force: per purpose, window, ceiling, citation, kind (must_keep, may_keep), floor, anchor, condition and the tagged types it covers';
GRANT SELECT ON retention.policy TO PUBLIC;

-- which rule governs a column of type typ tagged purpose pur, in a table
-- of kind table_kind, under the regime in force: the purpose's own rule if
-- it covers the type, else an alias; none if the rule is for the other
-- kind of table (a contract's end, a communication's)
CREATE FUNCTION retention._rule_for(pur text, typ text, table_kind text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT r.purpose
	  FROM retention.rule r
	 WHERE r.regime = retention.regime_in_force()
	   AND (r.anchor = 'contract_end') = (table_kind = 'subscriber')
	   AND ((r.purpose = pur AND typ = ANY (r.covers))
			OR r.purpose = (SELECT a.rule FROM retention.rule_alias a
							 WHERE a.regime = r.regime AND a.purpose = pur AND a.type = typ))
	 ORDER BY r.purpose = pur DESC
	 LIMIT 1
$$;

-- the rules governing a tagged column of a table (protected or not: a
-- table not protected reads as a communication table), under the regime
-- in force
CREATE FUNCTION retention._column_rules(tbl regclass, col name)
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT coalesce(pg_catalog.array_agg(DISTINCT r ORDER BY r) FILTER (WHERE r IS NOT NULL), '{}')
	  FROM retention.tagged_columns(tbl) t,
		   LATERAL pg_catalog.unnest(t.purposes) pu,
		   LATERAL retention._rule_for(pu, pg_catalog.replace(t.type::text, 'retention.', ''),
									   coalesce((SELECT p.table_kind FROM retention.protected_table p
												  WHERE p.relid = retention._is_protected(tbl)),
												'communication')) r
	 WHERE t.attname = col
$$;

-- the regime in force's rules the C module applies: per tagged type,
-- which rule each purpose reads as (policy.c)
CREATE FUNCTION retention._coverage(OUT purpose text, OUT type text, OUT table_kind text, OUT rule text)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT pu.purpose, ty.t, k.k, retention._rule_for(pu.purpose, ty.t, k.k)
	  FROM retention.purpose pu,
		   pg_catalog.unnest('{msisdn,imsi,imei,cell,ident}'::text[]) ty(t),
		   pg_catalog.unnest('{communication,subscriber}'::text[]) k(k)
	 WHERE retention._rule_for(pu.purpose, ty.t, k.k) IS NOT NULL
$$;

-- Dated legal bases: the national-security injunction decrees of III.
-- Append-only: a renewal is a new row, and a lapsed decree stays, since
-- the data taken in under it keep their year.  Dumped.
CREATE TABLE retention.legal_basis (
	id				bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	basis			text NOT NULL CHECK (basis IN ('national_security')),
	reference		text NOT NULL CHECK (pg_catalog.btrim(reference) <> ''),
	valid_from		timestamptz NOT NULL,
	valid_to		timestamptz NOT NULL,
	declared_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	declared_by		name NOT NULL DEFAULT session_user,
	CHECK (valid_from < valid_to)
);
COMMENT ON TABLE retention.legal_basis IS
	'Dated legal bases (national-security injunction decrees, CPCE L34-1 III): append-only';
SELECT pg_catalog.pg_extension_config_dump('retention.legal_basis', '');
SELECT pg_catalog.pg_extension_config_dump('retention.legal_basis_id_seq', '');
CREATE TRIGGER legal_basis_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON retention.legal_basis
	FOR EACH STATEMENT EXECUTE FUNCTION retention._catalog_changed();

CREATE FUNCTION retention._append_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, retention, pg_temp
AS $$
BEGIN
	RAISE EXCEPTION 'table % is append-only', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME
		USING ERRCODE = 'insufficient_privilege',
			  HINT = 'A legal basis once declared stays: data taken in under it keep their term. Declare a renewal or a new decree as a new basis.';
END
$$;
CREATE TRIGGER legal_basis_append_only
	BEFORE UPDATE OR DELETE ON retention.legal_basis
	FOR EACH ROW EXECUTE FUNCTION retention._append_only();
CREATE TRIGGER legal_basis_no_truncate
	BEFORE TRUNCATE ON retention.legal_basis
	FOR EACH STATEMENT EXECUTE FUNCTION retention._append_only();

CREATE FUNCTION retention.declare_basis(basis text, reference text,
										valid_from timestamptz, valid_to timestamptz)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	id		bigint;
BEGIN
	IF basis IS NULL OR basis <> 'national_security' THEN
		RAISE EXCEPTION 'unknown legal basis "%"', basis
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'The only dated basis is national_security: a decree enjoining retention (CPCE L34-1 III).';
	END IF;
	IF reference IS NULL OR pg_catalog.btrim(reference) = '' THEN
		RAISE EXCEPTION 'a legal basis needs a reference'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Give the decree''s number, such as ''décret n° 2025-980''.';
	END IF;
	IF valid_from IS NULL OR valid_to IS NULL OR NOT pg_catalog.isfinite(valid_from)
	   OR NOT pg_catalog.isfinite(valid_to) OR valid_from >= valid_to THEN
		RAISE EXCEPTION 'invalid period for legal basis %', reference
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'valid_from and valid_to are required, finite, and valid_from must be before valid_to.';
	END IF;
	-- a year in UTC calendar time, as every term of the rules
	IF valid_to > ((valid_from AT TIME ZONE 'UTC') + interval '1 year') AT TIME ZONE 'UTC' THEN
		RAISE EXCEPTION 'a national-security decree is in force for at most one year'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = pg_catalog.format('%s runs from %s to %s.', reference, valid_from, valid_to),
				  HINT = 'CPCE L34-1 III: the injunction lasts at most one year, renewable; declare each renewal as a new basis.';
	END IF;
	INSERT INTO retention.legal_basis AS b (basis, reference, valid_from, valid_to)
		VALUES (basis, reference, valid_from, valid_to)
		RETURNING b.id INTO id;
	PERFORM retention._audit('declare_basis', basis,
							 pg_catalog.jsonb_build_object('id', id, 'reference', reference,
														   'valid_from', valid_from, 'valid_to', valid_to));
	-- rows taken in during the new period are kept for it from now on;
	-- those already erased at write time are gone (report() shows the
	-- period's start)
	RETURN id;
END
$$;
COMMENT ON FUNCTION retention.declare_basis(text, text, timestamptz, timestamptz) IS
	'Declare a dated legal basis, such as a national-security injunction decree (append-only, audited)';
REVOKE ALL ON FUNCTION retention.declare_basis(text, text, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.declare_basis(text, text, timestamptz, timestamptz) TO retention_admin;

-- the decree a communication ended at `at' rests on, if any
CREATE FUNCTION retention._basis_at(basis text, at timestamptz)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT b.reference FROM retention.legal_basis b
	 WHERE b.basis = _basis_at.basis AND b.valid_from <= at AND at < b.valid_to
	 ORDER BY b.valid_from DESC, b.id DESC
	 LIMIT 1
$$;

-- Location consents (V): their own kind, withdrawable and suspendable at
-- any time; an emergency call counts as consent until the rescue
-- operation is closed.  Dumped.
CREATE TABLE retention.location_consent (
	id				bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	subscriber		text NOT NULL,
	kind			text NOT NULL CHECK (kind IN ('location', 'emergency')),
	reference		text,
	valid_until		timestamptz,
	granted_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	granted_by		name NOT NULL DEFAULT session_user,
	suspended_at	timestamptz,
	withdrawn_at	timestamptz,
	closed_at		timestamptz,
	CHECK ((kind = 'location') = (valid_until IS NOT NULL)),
	CHECK (kind = 'emergency' OR (reference IS NULL AND closed_at IS NULL)),
	CHECK (kind = 'location' OR (suspended_at IS NULL AND withdrawn_at IS NULL))
);
CREATE INDEX location_consent_subscriber ON retention.location_consent (subscriber);
SELECT pg_catalog.pg_extension_config_dump('retention.location_consent', '');
SELECT pg_catalog.pg_extension_config_dump('retention.location_consent_id_seq', '');
COMMENT ON TABLE retention.location_consent IS
	'Location consents (CPCE L34-1 V): granted, suspended, withdrawn; emergency calls until the rescue is closed';

-- a hold, and a marketing consent, in force at moment: the one definition
-- of each for PL/pgSQL (C's queries use HOLD_ACTIVE_SQL and
-- CONSENT_ACTIVE_SQL of expiry.h, which say the same).  Plain SQL, no
-- settings: inlined where they are used.
CREATE FUNCTION retention._hold_active(released_at timestamptz, until timestamptz, moment timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT released_at IS NULL AND (until IS NULL OR until OPERATOR(pg_catalog.>) moment) $$;
CREATE FUNCTION retention._consent_active(withdrawn_at timestamptz, valid_until timestamptz,
										  contract_end timestamptz, moment timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT withdrawn_at IS NULL AND LEAST(valid_until, contract_end) OPERATOR(pg_catalog.>) moment $$;

-- is a location consent of subscriber in effect at moment?  (the one
-- definition: holds.c calls it)
CREATE FUNCTION retention._location_consent_active(subscriber text, moment timestamptz)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT EXISTS (SELECT 1 FROM retention.location_consent l
					WHERE l.subscriber = _location_consent_active.subscriber
					  AND l.withdrawn_at IS NULL AND l.suspended_at IS NULL
					  AND CASE l.kind WHEN 'location' THEN l.valid_until > moment
									  ELSE l.closed_at IS NULL END)
$$;

CREATE FUNCTION retention.grant_location_consent(subscriber text, valid_until timestamptz)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	v		text := retention._consent_subscriber(subscriber);
	id		bigint;
BEGIN
	IF subscriber IS NULL THEN
		RAISE EXCEPTION 'subscriber must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF valid_until IS NULL OR NOT pg_catalog.isfinite(valid_until) OR valid_until <= pg_catalog.now() THEN
		RAISE EXCEPTION 'a location consent needs an end in the future'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = pg_catalog.format('valid_until is %s.', coalesce(valid_until::text, 'null')),
				  HINT = 'CPCE L34-1 V: the subscriber is told the duration of the processing before consenting.';
	END IF;
	INSERT INTO retention.location_consent AS l (subscriber, kind, valid_until)
		VALUES (v, 'location', valid_until)
		RETURNING l.id INTO id;
	PERFORM retention._audit('grant_location_consent', NULL,
							 pg_catalog.jsonb_build_object('id', id, 'valid_until', valid_until));
	RETURN id;
END
$$;
COMMENT ON FUNCTION retention.grant_location_consent(text, timestamptz) IS
	'Record a subscriber''s consent to keeping location data, until a date (audited)';

-- suspend, resume or withdraw every location consent of a subscriber
CREATE FUNCTION retention._location_consent_change(subscriber text, what text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	v		text := retention._consent_subscriber(subscriber);
	n		integer;
BEGIN
	IF subscriber IS NULL THEN
		RAISE EXCEPTION 'subscriber must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF what = 'suspend' THEN
		UPDATE retention.location_consent l SET suspended_at = pg_catalog.now()
		 WHERE l.subscriber = v AND l.kind = 'location' AND l.withdrawn_at IS NULL
		   AND l.suspended_at IS NULL;
	ELSIF what = 'resume' THEN
		UPDATE retention.location_consent l SET suspended_at = NULL
		 WHERE l.subscriber = v AND l.kind = 'location' AND l.withdrawn_at IS NULL
		   AND l.suspended_at IS NOT NULL;
	ELSE
		UPDATE retention.location_consent l SET withdrawn_at = pg_catalog.now()
		 WHERE l.subscriber = v AND l.kind = 'location' AND l.withdrawn_at IS NULL;
	END IF;
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n = 0 THEN
		RAISE EXCEPTION 'subscriber has no location consent to %', what
			USING ERRCODE = 'no_data_found';
	END IF;
	PERFORM retention._audit(what || '_location_consent', NULL,
							 pg_catalog.jsonb_build_object('consents', n));
	RETURN n;
END
$$;

CREATE FUNCTION retention.suspend_location_consent(subscriber text)
RETURNS integer
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$ SELECT retention._location_consent_change(subscriber, 'suspend') $$;
COMMENT ON FUNCTION retention.suspend_location_consent(text) IS
	'Suspend a subscriber''s location consent: nothing is kept for location meanwhile (audited)';

CREATE FUNCTION retention.resume_location_consent(subscriber text)
RETURNS integer
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$ SELECT retention._location_consent_change(subscriber, 'resume') $$;
COMMENT ON FUNCTION retention.resume_location_consent(text) IS
	'End the suspension of a subscriber''s location consent; what went meanwhile stays gone (audited)';

CREATE FUNCTION retention.withdraw_location_consent(subscriber text)
RETURNS integer
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$ SELECT retention._location_consent_change(subscriber, 'withdraw') $$;
COMMENT ON FUNCTION retention.withdraw_location_consent(text) IS
	'Withdraw a subscriber''s location consent (audited)';

CREATE FUNCTION retention.emergency_call(subscriber text, reference text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	v		text := retention._consent_subscriber(subscriber);
	id		bigint;
BEGIN
	IF subscriber IS NULL THEN
		RAISE EXCEPTION 'subscriber must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF reference IS NULL OR pg_catalog.btrim(reference) = '' THEN
		RAISE EXCEPTION 'an emergency call needs the rescue operation''s reference'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	INSERT INTO retention.location_consent AS l (subscriber, kind, reference)
		VALUES (v, 'emergency', reference)
		RETURNING l.id INTO id;
	PERFORM retention._audit('emergency_call', NULL,
							 pg_catalog.jsonb_build_object('id', id, 'reference', reference));
	RETURN id;
END
$$;
COMMENT ON FUNCTION retention.emergency_call(text, text) IS
	'An emergency call: location data of the caller are kept until the rescue operation is closed (CPCE L34-1 V, audited)';

CREATE FUNCTION retention.close_emergency(id bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	l		retention.location_consent;
BEGIN
	SELECT * INTO l FROM retention.location_consent c WHERE c.id = close_emergency.id FOR UPDATE;
	IF NOT FOUND OR l.kind <> 'emergency' THEN
		RAISE EXCEPTION 'emergency call % does not exist', id
			USING ERRCODE = 'undefined_object';
	END IF;
	IF l.closed_at IS NOT NULL THEN
		RAISE EXCEPTION 'the rescue operation of emergency call % was already closed', id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = pg_catalog.format('It was closed at %s.', l.closed_at);
	END IF;
	UPDATE retention.location_consent c SET closed_at = pg_catalog.now() WHERE c.id = close_emergency.id;
	PERFORM retention._audit('close_emergency', NULL,
							 pg_catalog.jsonb_build_object('id', id, 'reference', l.reference));
END
$$;
COMMENT ON FUNCTION retention.close_emergency(bigint) IS
	'Close the rescue operation of an emergency call: its location data fall due (audited)';

REVOKE ALL ON FUNCTION retention.grant_location_consent(text, timestamptz),
				   retention.suspend_location_consent(text),
				   retention.resume_location_consent(text),
				   retention.withdraw_location_consent(text),
				   retention.emergency_call(text, text),
				   retention.close_emergency(bigint),
				   retention._location_consent_change(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.grant_location_consent(text, timestamptz),
				   retention.suspend_location_consent(text),
				   retention.resume_location_consent(text),
				   retention.withdraw_location_consent(text),
				   retention.emergency_call(text, text),
				   retention.close_emergency(bigint) TO retention_admin;

CREATE FUNCTION retention._cutoffs(moment timestamptz)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'retention_cutoffs_at'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION retention._cutoffs(timestamptz) IS
	'Each rule''s cutoff at a moment, as the rules apply it: values anchored at or before it are past the rule''s window';

-- a sweep's first row (status running) gets the regime and the cutoffs
-- of its fixed cutoff moment: the C engine's own, in the sweep's
-- transaction; rows restored from a dump keep what they say
CREATE FUNCTION retention._sweep_log_rules()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, retention, pg_temp
AS $$
BEGIN
	IF NEW.status = 'running' AND NEW.cutoffs IS NULL THEN
		NEW.regime := retention.regime_in_force();
		NEW.cutoffs := retention._cutoffs(NEW.cutoff);
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER sweep_log_rules
	BEFORE INSERT ON retention.sweep_log
	FOR EACH ROW EXECUTE FUNCTION retention._sweep_log_rules();

-- sweeps that applied a cutoff later than the floor of a rule that must
-- keep allowed, under the regime they ran under, as shipped: they may
-- have erased what had to be kept
CREATE FUNCTION retention._early_erasures(OUT id bigint, OUT relid regclass, OUT problem text)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT l.id, l.relid,
		   pg_catalog.format('sweep %s of %s at %s cleared %s data anchored up to %s, less than their floor of %s old (%s)',
							 l.id, l.relid, l.cutoff, r.purpose,
							 (l.cutoffs->>r.purpose)::timestamptz, r.floor, r.citation)
	  FROM retention.sweep_log l
	  JOIN retention._shipped_rules() r ON r.regime = l.regime AND r.kind = 'must_keep'
	 WHERE l.cutoffs ? r.purpose
	   AND l.status IN ('done', 'failed', 'interrupted', 'running')
	   AND (l.cutoffs->>r.purpose)::timestamptz > ((l.cutoff AT TIME ZONE 'UTC') - r.floor) AT TIME ZONE 'UTC'
	 ORDER BY l.id, r.purpose
$$;

-- the database's owner dumps these, as the other configuration tables
-- (see "The database's owner can pg_dump its database" below)
DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pg_database_owner') THEN
		GRANT SELECT ON retention.location_consent TO pg_database_owner;
		GRANT SELECT ON SEQUENCE retention.legal_basis_id_seq, retention.location_consent_id_seq
			TO pg_database_owner;
	END IF;
END
$$;

-- protected tables: which rows the operator's own subscribers originated
-- (billing keeps nothing else under fr-2025), and what the table holds:
-- communications (anchored on their end) or subscribers and contracts
-- (anchored on the contract's end, NULL while it runs)
ALTER EVENT TRIGGER retention_exposures_before_alter DISABLE;
ALTER EVENT TRIGGER retention_exposures_after_alter DISABLE;
ALTER TABLE retention.protected_table
	ADD COLUMN originated name,
	ADD COLUMN table_kind text NOT NULL DEFAULT 'communication'
		CHECK (table_kind IN ('communication', 'subscriber'));
-- each sweep records the regime it ran under and the cutoff of each rule
-- it applied, so that what it cleared can be checked against the floors of
-- the law in force at the time (verify()), whatever the rules say later
ALTER TABLE retention.sweep_log
	ADD COLUMN regime text,
	ADD COLUMN cutoffs jsonb;
ALTER EVENT TRIGGER retention_exposures_before_alter ENABLE;
ALTER EVENT TRIGGER retention_exposures_after_alter ENABLE;


-- the law, the regime chosen and the decrees declared are public: any
-- role's writes are decided by them
GRANT SELECT ON retention.regime, retention.rule, retention.rule_alias,
				retention.regime_setting, retention.legal_basis TO PUBLIC;

CREATE OR REPLACE FUNCTION retention._unknown_purpose(purpose text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, retention, pg_temp
AS $$
BEGIN
	RAISE EXCEPTION 'unknown retention purpose "%"', purpose
		USING ERRCODE = 'invalid_parameter_value',
			  HINT = 'Valid purposes are account, billing, connection, identity, law_enforcement, location, marketing, national_security, network_security and payment.';
END
$$;

-- per tagged column of a protected table, in tagged_columns() order: how
-- many of its values in clear are past their deadline now, under the
-- regime in force (as report()'s overdue_rows)
CREATE FUNCTION retention._overdue_values(tbl regclass)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	n		integer;
	aggs	text;
	res		bigint[];
BEGIN
	SELECT pg_catalog.count(*) INTO n FROM retention.tagged_columns(tbl);
	IF n = 0 THEN
		RETURN '{}';
	END IF;
	SELECT pg_catalog.string_agg(pg_catalog.format('count(*) FILTER (WHERE substr(s, %s, 1) = ''o'')', k), ', ')
	  INTO aggs FROM pg_catalog.generate_series(1, n) k;
	EXECUTE pg_catalog.format('SELECT ARRAY[%s] FROM (SELECT retention._column_states(%s) s FROM %s x) q',
							  aggs, retention._row_args(tbl), tbl)
	   INTO res;
	RETURN res;
END
$$;

-- per tagged column of every protected table ("relid/column"), under the
-- regime in force: [the rules that govern it, its overdue values]
CREATE FUNCTION retention._regime_state()
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	p		record;
	c		record;
	i		integer;
	counts	bigint[];
	state	jsonb := '{}';
BEGIN
	FOR p IN SELECT pt.relid FROM retention.protected_table pt ORDER BY pt.relid::text LOOP
		counts := retention._overdue_values(p.relid);
		i := 0;
		FOR c IN SELECT t.attname FROM retention.tagged_columns(p.relid) t LOOP
			i := i + 1;
			state := state || pg_catalog.jsonb_build_object(p.relid::oid::text || '/' || c.attname,
				pg_catalog.jsonb_build_array(pg_catalog.to_jsonb(retention._column_rules(p.relid, c.attname)),
											 counts[i]));
		END LOOP;
	END LOOP;
	RETURN state;
END
$$;

-- Switch the regime in force.  Nothing is erased at the switch: values
-- whose deadline is earlier under the new regime are the next sweep's.
-- Returns, per tagged column of each protected table whose rules or
-- overdue values change, the rules before and after and the values the
-- next sweep would then clear.  With dry_run, nothing changes.
CREATE FUNCTION retention.set_regime(code text, dry_run boolean DEFAULT false)
RETURNS TABLE ("table" regclass, "column" name, rules_before text[], rules_after text[],
			   overdue_before bigint, overdue_after bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	old			text := retention.regime_in_force();
	p			record;
	c			record;
	before		jsonb;
	after		jsonb;
	dropped		jsonb := '[]';
BEGIN
	IF code IS NULL OR NOT EXISTS (SELECT 1 FROM retention.regime r WHERE r.code = set_regime.code) THEN
		RAISE EXCEPTION 'unknown legal regime "%"', code
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Valid regimes are fr-2004 and fr-2025 (see retention.regime).';
	END IF;
	IF dry_run IS NULL THEN
		RAISE EXCEPTION 'dry_run must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	-- the state under each regime: rules and overdue values per column
	before := retention._regime_state();
	BEGIN
		INSERT INTO retention.regime_setting AS s (regime) VALUES (code)
			ON CONFLICT ON CONSTRAINT regime_setting_pkey
			DO UPDATE SET regime = excluded.regime, set_at = pg_catalog.now(), set_by = session_user;
		-- windows set under the old regime outside the new one's bounds go
		FOR c IN SELECT ws.purpose, ws."window", r.floor, r.ceiling
				   FROM retention.window_setting ws
				   JOIN retention.rule r ON r.regime = code AND r.purpose = ws.purpose
				  WHERE (r.ceiling IS NOT NULL AND NOT retention._window_within(ws."window", r.ceiling))
					 OR (r.floor IS NOT NULL AND NOT retention._window_within(r.floor, ws."window"))
					 OR r.ceiling IS NULL LOOP
			DELETE FROM retention.window_setting ws WHERE ws.purpose = c.purpose;
			dropped := dropped || pg_catalog.jsonb_build_object('purpose', c.purpose, 'window', c."window"::text);
		END LOOP;
		after := retention._regime_state();
		IF dry_run THEN
			RAISE EXCEPTION USING ERRCODE = 'RTDRY';
		END IF;
	EXCEPTION WHEN SQLSTATE 'RTDRY' THEN
		NULL;				-- the dry run's switch is undone
	END;
	FOR p IN SELECT pt.relid FROM retention.protected_table pt ORDER BY pt.relid::text LOOP
		FOR c IN SELECT t.attname FROM retention.tagged_columns(p.relid) t LOOP
			"table" := p.relid;
			"column" := c.attname;
			SELECT pg_catalog.array_agg(x) INTO rules_before
			  FROM pg_catalog.jsonb_array_elements_text(before->(p.relid::oid::text || '/' || c.attname)->0) x;
			SELECT pg_catalog.array_agg(x) INTO rules_after
			  FROM pg_catalog.jsonb_array_elements_text(after->(p.relid::oid::text || '/' || c.attname)->0) x;
			rules_before := coalesce(rules_before, '{}');
			rules_after := coalesce(rules_after, '{}');
			overdue_before := (before->(p.relid::oid::text || '/' || c.attname)->>1)::bigint;
			overdue_after := (after->(p.relid::oid::text || '/' || c.attname)->>1)::bigint;
			IF rules_before IS DISTINCT FROM rules_after OR overdue_before IS DISTINCT FROM overdue_after THEN
				RETURN NEXT;
			END IF;
		END LOOP;
	END LOOP;
	IF NOT dry_run THEN
		-- the next sweep reads every table under the new rules (issue 16)
		IF code IS DISTINCT FROM old THEN
			PERFORM retention.request_full_sweep(NULL, pg_catalog.format('the legal regime changed from %s to %s', old, code));
		END IF;
		-- the purpose-bound views show what the new rules keep for each purpose
		PERFORM retention._exposures_release(x.relid) FROM (SELECT DISTINCT e.relid FROM retention.exposure e) x;
		PERFORM retention._exposures_restore(ARRAY(SELECT DISTINCT e.relid::oid FROM retention.exposure e));
		PERFORM retention._audit('set_regime', code,
								 pg_catalog.jsonb_build_object('old', old, 'new', code,
															   'windows_dropped', dropped));
	END IF;
END
$$;
COMMENT ON FUNCTION retention.set_regime(text, boolean) IS
	'Switch the legal regime in force (audited); with dry_run, say per table and column what would change';
REVOKE ALL ON FUNCTION retention.set_regime(text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.set_regime(text, boolean) TO retention_admin;

-- what keeps the regime's rules from being the law: rules, regimes or
-- aliases that differ from what this version shipped (a superuser's
-- edit), a window setting outside its rule's floor or ceiling (a direct
-- write; the rules clamp it, but the setting is not what applies)
CREATE FUNCTION retention._regime_problems(OUT problem text)
RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT DISTINCT pg_catalog.format('rule %s/%s differs from the rule shipped with retention', x.regime, x.purpose)
	  FROM ((SELECT * FROM retention.rule EXCEPT SELECT * FROM retention._shipped_rules())
			UNION
			(SELECT * FROM retention._shipped_rules() EXCEPT SELECT * FROM retention.rule)) x
	UNION ALL
	SELECT DISTINCT pg_catalog.format('regime %s differs from the regime shipped with retention', x.code)
	  FROM ((SELECT * FROM retention.regime EXCEPT SELECT * FROM retention._shipped_regimes())
			UNION
			(SELECT * FROM retention._shipped_regimes() EXCEPT SELECT * FROM retention.regime)) x
	UNION ALL
	SELECT DISTINCT pg_catalog.format('alias %s/%s/%s differs from the alias shipped with retention', x.regime, x.purpose, x.type)
	  FROM ((SELECT * FROM retention.rule_alias EXCEPT SELECT * FROM retention._shipped_rule_aliases())
			UNION
			(SELECT * FROM retention._shipped_rule_aliases() EXCEPT SELECT * FROM retention.rule_alias)) x
	UNION ALL
	SELECT pg_catalog.format('window %s of purpose %s is outside its floor and ceiling (%s to %s) under regime %s',
							 pol."window", pol.purpose, coalesce(pol.floor::text, 'none'), pol.ceiling, pol.regime)
	  FROM retention.policy pol
	  JOIN retention.window_setting ws ON ws.purpose = pol.purpose
	 WHERE pol.ceiling IS NULL
		OR (ws."window" <> pol.ceiling AND NOT retention._window_within(ws."window", pol.ceiling))
		OR (pol.floor IS NOT NULL AND ws."window" <> pol.floor AND NOT retention._window_within(pol.floor, ws."window"))
	ORDER BY 1
$$;

--------------------------------------------------------------------------
-- Windows, anchors and time (issue 13, items 4, 5, 7 and 21)
--
-- Windows compare with ceilings as calendar time, never as intervals (to
-- which a month is 30 days): a window fits its ceiling when, counted back
-- from every day of the calendar, it reaches no further than the ceiling.
-- The rules (expiry.c) compute every cutoff in UTC calendar arithmetic and
-- cap it by the ceiling's, so a window row written directly or restored
-- from a dump cannot keep data longer either.  A billing anchor counts
-- only up to ended_at + the billing ceiling; report() lists the rows whose
-- anchor is bounded.  Consents have a bounded term.
--------------------------------------------------------------------------

-- does window w end no later than ceiling c, counted back from any day?
-- Month arithmetic repeats every 400 years (146097 days): every day of one
-- cycle is tried, in timestamp (UTC) arithmetic as the rules use.  The
-- time of day shifts both sides alike, so days suffice.
CREATE FUNCTION retention._window_within(w interval, c interval)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, retention, pg_temp
AS $$
BEGIN
	RETURN (SELECT pg_catalog.bool_and(d - w >= d - c)
			  FROM pg_catalog.generate_series(timestamp '2000-03-01', timestamp '2400-02-29',
											  interval '1 day') d);
EXCEPTION WHEN datetime_field_overflow THEN
	-- so long that it cannot be counted back: longer than any ceiling
	RETURN false;
END
$$;
COMMENT ON FUNCTION retention._window_within(interval, interval) IS
	'Whether a window ends no later than a ceiling counted back from every day of the calendar';

CREATE OR REPLACE FUNCTION retention.set_window(purpose text, "window" interval)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
SET intervalstyle = postgres
AS $$
DECLARE
	p		retention.policy%ROWTYPE;
	old		interval;
	w		interval := set_window."window";
	m		double precision;
	d		double precision;
	s		double precision;
	alias	text;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM retention.purpose pu WHERE pu.purpose = set_window.purpose) THEN
		PERFORM retention._unknown_purpose(set_window.purpose);
	END IF;
	SELECT * INTO p FROM retention.policy pol WHERE pol.purpose = set_window.purpose;
	IF NOT FOUND THEN
		SELECT pg_catalog.string_agg(DISTINCT pg_catalog.format('%s (%s)', a.rule, r.citation), ' or ')
		  INTO alias
		  FROM retention.rule_alias a JOIN retention.rule r ON r.regime = a.regime AND r.purpose = a.rule
		 WHERE a.regime = retention.regime_in_force() AND a.purpose = set_window.purpose;
		RAISE EXCEPTION 'purpose "%" has no rule of its own under regime %',
				set_window.purpose, retention.regime_in_force()
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = CASE WHEN alias IS NOT NULL
							  THEN pg_catalog.format('Its columns follow %s: set the window of that purpose.', alias)
							  ELSE 'See retention.policy for the purposes of the regime in force.' END;
	END IF;
	IF p.ceiling IS NULL THEN
		RAISE EXCEPTION 'purpose "%" has no fixed window', p.purpose
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = CASE WHEN p.condition = 'location_consent'
								THEN 'Location data are kept only under the subscriber''s consent, for the consent''s own duration.'
								ELSE 'Marketing data are kept only under the subscriber''s express consent, for the consent''s own duration.' END,
				  HINT = pg_catalog.format('See %s; use retention.%s().', p.legal_basis,
										   CASE WHEN p.condition = 'location_consent'
												THEN 'grant_location_consent' ELSE 'grant_consent' END);
	END IF;
	IF w IS NULL THEN
		RAISE EXCEPTION 'retention window must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	-- months, days and time, each with its own sign (an infinite window,
	-- PostgreSQL 17 on, has none: counted as that many years)
	m := CASE WHEN pg_catalog.isfinite(w) THEN
			  pg_catalog.date_part('year', w) * 12 + pg_catalog.date_part('month', w)
			  WHEN w > interval '0' THEN 12000000 ELSE -12000000 END;
	IF NOT pg_catalog.isfinite(w) THEN
		d := 0;
		s := 0;
	ELSE
		d := pg_catalog.date_part('day', w);
		s := pg_catalog.date_part('epoch', w - pg_catalog.make_interval(months => m::integer, days => d::integer));
	END IF;
	IF (m > 0 OR d > 0 OR s > 0) AND (m < 0 OR d < 0 OR s < 0) THEN
		RAISE EXCEPTION 'retention window must not mix positive and negative parts'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = pg_catalog.format('The window given was %s.', w),
				  HINT = 'Give the window as a positive interval, such as ''6 months'' or ''30 days''.';
	END IF;
	IF m < 0 OR d < 0 OR s < 0 THEN
		RAISE EXCEPTION 'retention window must not be negative'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = pg_catalog.format('The window given was %s.', w);
	END IF;
	IF p.floor IS NOT NULL AND NOT retention._window_within(p.floor, w) THEN
		RAISE EXCEPTION 'retention window % for purpose "%" is below its legal floor of %',
				w, p.purpose, p.floor
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = pg_catalog.format('Windows compare with floors as calendar time: counted from some day, %s ends earlier than %s.',
											 w, p.floor),
				  HINT = pg_catalog.format('%s requires %s data to be kept for %s.', p.legal_basis,
										   pg_catalog.replace(p.purpose, '_', ' '), p.floor);
	END IF;
	IF NOT retention._window_within(w, p.ceiling) THEN
		RAISE EXCEPTION 'retention window % for purpose "%" exceeds its legal ceiling of %',
				w, p.purpose, p.ceiling
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = pg_catalog.format('Windows compare with ceilings as calendar time: counted from some day, %s ends later than %s.',
											 w, p.ceiling),
				  HINT = pg_catalog.format('%s allows keeping %s data at most %s.', p.legal_basis,
										   pg_catalog.replace(p.purpose, '_', ' '), p.ceiling);
	END IF;

	old := p."window";
	INSERT INTO retention.window_setting AS ws (purpose, "window")
		VALUES (p.purpose, w)
		ON CONFLICT ON CONSTRAINT window_setting_pkey
		DO UPDATE SET "window" = excluded."window", set_at = pg_catalog.now(), set_by = session_user;
	PERFORM retention._audit('set_window', p.purpose,
							 pg_catalog.jsonb_build_object('old', old::text, 'new', w::text,
														   'regime', p.regime));
END
$$;

-- the instant a timestamp-without-time-zone value stands for, in the zone
-- of retention.timezone (or log_timezone): no session setting moves it
CREATE FUNCTION retention._instant(ts timestamp)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'retention_instant'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

-- is the row's billing anchor later than ended_at + the billing ceiling?
CREATE FUNCTION retention._anchor_bounded(tableoid oid, ended_at "any", billing_anchor "any")
RETURNS boolean
AS 'MODULE_PATHNAME', 'retention_anchor_bounded'
LANGUAGE C STABLE PARALLEL SAFE;

-- report(): as in 1.0, with the window the rules apply (capped by the
-- ceiling as calendar time), oldest_clear read in retention's zone for a
-- timestamp ended_at, and a row of kind 'bounded anchor' for each table
-- where rows have a billing anchor past ended_at + the billing ceiling
-- (rows_in_clear counts them).  Catalog names are schema-qualified.
-- Issue 15: and per column the rules of the regime in force that govern
-- it, with their floor, ceiling and citations; the decrees national-
-- security data rest on; a subscriber table's former subscribers kept
-- past every deadline.
DROP FUNCTION retention.report();
CREATE FUNCTION retention.report()
RETURNS TABLE ("table" regclass, "column" name, kind text, type regtype, purposes text[],
			   "window" interval, method text, rows_in_clear bigint, oldest_clear timestamptz,
			   overdue_rows bigint, held_rows bigint, last_sweep timestamptz, note text,
			   rules text[], floor interval, ceiling interval, basis text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
SET intervalstyle = postgres
AS $$
DECLARE
	p		retention.protected_table;
	b		record;
	cnt		bigint;
	cols	record;
	n		integer;
	aggs	text;
	res		jsonb;
	swept	timestamptz;
	i		integer;
	ended	text;
	bounded	text;
	ceil	interval;
	windows	jsonb;
BEGIN
	SELECT pol.ceiling INTO ceil FROM retention.policy pol WHERE pol.purpose = 'billing';
	-- each purpose's window as the rules apply it: within its floor and ceiling
	SELECT pg_catalog.jsonb_object_agg(pol.purpose,
			   CASE WHEN pol.ceiling IS NOT NULL AND NOT retention._window_within(pol."window", pol.ceiling)
					THEN pol.ceiling
					WHEN pol.floor IS NOT NULL AND NOT retention._window_within(pol.floor, pol."window")
					THEN pol.floor ELSE pol."window" END)
	  INTO windows FROM retention.policy pol;
	FOR p IN SELECT * FROM retention.protected_table
			  -- not over a Citus table's shell: "Citus: fail closed" says why
			  WHERE retention._citus_problem(relid) IS NULL
			  ORDER BY relid::text LOOP
		SELECT pg_catalog.max(l.finished_at) INTO swept FROM retention.sweep_log l
		 WHERE l.relid = p.relid AND l.status = 'done';
		-- one scan of the table: per tagged column, its values in clear, the
		-- oldest of them, those past their deadline, those held; then the
		-- rows whose billing anchor is bounded
		SELECT pg_catalog.count(*) INTO n FROM retention.tagged_columns(p.relid);
		SELECT pg_catalog.string_agg(pg_catalog.format('jsonb_build_array('
								 'count(*) FILTER (WHERE substr(s, %1$s, 1) IN (''k'', ''o'', ''h'')), '
								 'min(e) FILTER (WHERE substr(s, %1$s, 1) IN (''k'', ''o'', ''h'')), '
								 'count(*) FILTER (WHERE substr(s, %1$s, 1) = ''o''), '
								 'count(*) FILTER (WHERE substr(s, %1$s, 1) = ''h''))', k), ', ')
		  INTO aggs FROM pg_catalog.generate_series(1, n) k;
		ended := CASE WHEN (SELECT a.atttypid FROM pg_catalog.pg_attribute a
							 WHERE a.attrelid = p.relid AND a.attname = p.ended_at) = 'timestamp'::regtype
					  THEN pg_catalog.format('retention._instant(x.%I)', p.ended_at)
					  ELSE pg_catalog.format('x.%I', p.ended_at) END;
		bounded := CASE WHEN p.billing_anchor IS NULL THEN 'false'
						ELSE pg_catalog.format('retention._anchor_bounded(x.tableoid, x.%I, x.%I)',
											   p.ended_at, p.billing_anchor) END;
		EXECUTE pg_catalog.format('SELECT jsonb_build_array(%s count(*) FILTER (WHERE b), '
								  'count(*) FILTER (WHERE position(''o'' in s) > 0 AND s !~ ''[kh]'')) '
								  'FROM (SELECT retention._column_states(%s) s, %s e, %s b FROM %s x) q',
								  coalesce(aggs || ', ', ''), retention._row_args(p.relid), ended, bounded,
								  p.relid)
		   INTO res;
		i := 0;
		FOR cols IN SELECT * FROM retention.tagged_columns(p.relid) LOOP
			"table" := p.relid;
			"column" := cols.attname;
			kind := 'tagged';
			type := cols.type;
			purposes := cols.purposes;
			rules := retention._column_rules(p.relid, cols.attname);
			SELECT pg_catalog.max((windows->>pu)::interval) INTO "window"
			  FROM pg_catalog.unnest(rules) pu;
			SELECT pg_catalog.max(pol.floor), pg_catalog.max(pol.ceiling),
				   pg_catalog.string_agg(pol.legal_basis, '; ' ORDER BY pol.purpose)
			  INTO floor, ceiling, basis
			  FROM retention.policy pol WHERE pol.purpose = ANY (rules);
			method := cols.method;
			rows_in_clear := (res->i->>0)::bigint;
			oldest_clear := (res->i->>1)::timestamptz;
			overdue_rows := (res->i->>2)::bigint;
			held_rows := (res->i->>3)::bigint;
			last_sweep := swept;
			note := CASE WHEN cols.purposes = '{}' THEN 'kept for no purpose: erased when the call ends'
						 WHEN rules = '{}' THEN pg_catalog.format('no rule of regime %s covers %s for type %s in a %s table: kept for no purpose',
															   retention.regime_in_force(), pg_catalog.array_to_string(cols.purposes, ', '),
															   cols.type, p.table_kind)
						 WHEN cols.purposes = '{marketing}' THEN 'kept only under consent'
						 WHEN method = 'hash' THEN 'pseudonymized at its deadline, erased at the row''s last'
					END;
			RETURN NEXT;
			i := i + 1;
		END LOOP;
		rules := NULL; floor := NULL; ceiling := NULL; basis := NULL;
		-- the decrees national-security data of the table rest on (III)
		IF EXISTS (SELECT 1 FROM retention.tagged_columns(p.relid) t
					WHERE 'national_security' = ANY (retention._column_rules(p.relid, t.attname))) THEN
			FOR b IN SELECT lb.reference, lb.valid_from, lb.valid_to,
							(SELECT pol."window" FROM retention.policy pol WHERE pol.purpose = 'national_security') AS w
					   FROM retention.legal_basis lb WHERE lb.basis = 'national_security'
					  ORDER BY lb.valid_from, lb.id LOOP
				EXECUTE pg_catalog.format('SELECT count(*) FROM %s x WHERE %s >= $1 AND %s < $2 AND %s > now() - $3',
										  p.relid, ended, ended, ended)
				   INTO cnt USING b.valid_from, b.valid_to, b.w;
				"table" := p.relid; "column" := NULL; kind := 'legal basis'; type := NULL;
				purposes := '{national_security}'; "window" := b.w; method := NULL;
				rows_in_clear := cnt; oldest_clear := NULL; overdue_rows := NULL; held_rows := NULL;
				last_sweep := swept; rules := '{national_security}'; basis := b.reference;
				note := pg_catalog.format('rows of communications between %s and %s are kept for national security under %s, until a year after each',
										  b.valid_from, b.valid_to, b.reference);
				RETURN NEXT;
			END LOOP;
			rules := NULL; basis := NULL;
		END IF;
		-- a subscriber table's former subscribers kept past every deadline
		IF p.table_kind = 'subscriber' THEN
			"table" := p.relid; "column" := p.ended_at; kind := 'former subscribers'; type := NULL;
			purposes := NULL; "window" := NULL; method := NULL;
			rows_in_clear := NULL; oldest_clear := NULL; overdue_rows := (res->>(n + 1))::bigint;
			held_rows := NULL; last_sweep := swept;
			note := 'subscribers whose contract ended, every value of whom is past its deadline';
			RETURN NEXT;
		END IF;
		-- billing anchors the rules do not follow all the way
		IF (res->>n)::bigint > 0 THEN
			"table" := p.relid; "column" := p.billing_anchor; kind := 'bounded anchor';
			type := (SELECT a.atttypid::regtype FROM pg_catalog.pg_attribute a
					  WHERE a.attrelid = p.relid AND a.attname = p.billing_anchor);
			purposes := '{billing}'; "window" := NULL; method := NULL;
			rows_in_clear := (res->>n)::bigint; oldest_clear := NULL; overdue_rows := NULL;
			held_rows := NULL; last_sweep := swept;
			note := pg_catalog.format('billing anchor later than ended_at + %s: billing data of these rows are kept from ended_at + %s, not from the anchor',
									  ceil, ceil);
			RETURN NEXT;
		END IF;
		-- what the operator declares non-personal technical data (R6)
		FOR cols IN SELECT a.attname, a.atttypid::regtype AS type FROM pg_catalog.pg_attribute a
					 WHERE a.attrelid = p.relid AND a.attnum > 0 AND NOT a.attisdropped
					   AND NOT EXISTS (SELECT 1 FROM retention.tagged_columns(p.relid) t
										WHERE t.attname = a.attname)
					 ORDER BY a.attnum LOOP
			"table" := p.relid; "column" := cols.attname; kind := 'untagged'; type := cols.type;
			purposes := NULL; "window" := NULL; method := NULL; rows_in_clear := NULL;
			oldest_clear := NULL; overdue_rows := NULL; held_rows := NULL; last_sweep := swept;
			note := CASE WHEN cols.attname = p.ended_at THEN 'ended_at: anchors every deadline'
						 WHEN cols.attname = p.billing_anchor THEN 'billing anchor'
						 ELSE 'declared non-personal technical data' END;
			RETURN NEXT;
		END LOOP;
		-- copies of tagged values that a sweep does not reach
		FOR cols IN
			-- materialized views built on tagged columns
			SELECT DISTINCT r.ev_class::regclass::text AS what, 'materialized view' AS how, a.attname
			  FROM pg_catalog.pg_depend d
			  JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND r.oid = d.objid
			  JOIN pg_catalog.pg_class c ON c.oid = r.ev_class AND c.relkind = 'm'
			  JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
			 WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = p.relid
			   AND a.attname IN (SELECT t.attname FROM retention.tagged_columns(p.relid) t)
			UNION
			-- generated columns computed from them
			SELECT pg_catalog.format('%s.%I', p.relid, g.attname), 'generated column', a.attname
			  FROM pg_catalog.pg_depend d
			  JOIN pg_catalog.pg_attrdef ad ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND ad.oid = d.objid
			  JOIN pg_catalog.pg_attribute g ON g.attrelid = ad.adrelid AND g.attnum = ad.adnum AND g.attgenerated <> ''
			  JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
			 WHERE d.refobjid = p.relid
			   AND a.attname IN (SELECT t.attname FROM retention.tagged_columns(p.relid) t)
			UNION
			-- expression indexes on them
			SELECT i.indexrelid::regclass::text, 'expression index', a.attname
			  FROM pg_catalog.pg_index i
			  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = i.indexrelid
			  JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
			 WHERE i.indrelid = p.relid AND i.indexprs IS NOT NULL AND d.refobjid = p.relid
			   AND a.attname IN (SELECT t.attname FROM retention.tagged_columns(p.relid) t)
			UNION
			-- other tables whose foreign keys copy them
			SELECT pg_catalog.format('%s.%I', con.conrelid::regclass, fa.attname), 'foreign key copy', a.attname
			  FROM pg_catalog.pg_constraint con
			  JOIN LATERAL unnest(con.confkey, con.conkey) AS k(ref, loc) ON true
			  JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.ref
			  JOIN pg_catalog.pg_attribute fa ON fa.attrelid = con.conrelid AND fa.attnum = k.loc
			 WHERE con.contype = 'f' AND con.confrelid = p.relid
			   AND a.attname IN (SELECT t.attname FROM retention.tagged_columns(p.relid) t)
			ORDER BY 1
		LOOP
			"table" := p.relid; "column" := cols.attname; kind := 'copy'; type := NULL;
			purposes := NULL; "window" := NULL; method := NULL; rows_in_clear := NULL;
			oldest_clear := NULL; overdue_rows := NULL; held_rows := NULL; last_sweep := swept;
			note := pg_catalog.format('%s %s holds values of this column that no sweep reaches', cols.how, cols.what);
			RETURN NEXT;
		END LOOP;
	END LOOP;
END
$$;

-- Consents have a term.  A consent is "pour une durée déterminée": at
-- most three years from its grant (the CNIL's term for prospection data).
-- Checked on every write of the table, retention's functions, a direct
-- INSERT and a restore alike; counted in UTC, whatever TimeZone says.
-- (A hold's term is the order's: see "Quick freeze" below.)
CREATE FUNCTION retention._consent_term()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, retention, pg_temp
AS $$
BEGIN
	IF NOT pg_catalog.isfinite(NEW.valid_until) OR
	   NEW.valid_until > greatest(((NEW.granted_at AT TIME ZONE 'UTC') + interval '3 years') AT TIME ZONE 'UTC',
								  NEW.granted_at + interval '3 years') THEN
		RAISE EXCEPTION 'a marketing consent can last at most 3 years'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = pg_catalog.format('valid_until is %s; the consent is granted at %s.',
											 NEW.valid_until, NEW.granted_at),
				  HINT = 'CPCE L34-1 IV ¶2 allows marketing use only for a fixed duration: ask the subscriber to renew the consent when it ends.';
	END IF;
	RETURN NEW;
END
$$;

-- consents an upgraded 1.0 database holds past this term are brought
-- within it (audited), so that its dumps restore
DO $$
DECLARE
	r	record;
BEGIN
	FOR r IN UPDATE retention.consent c
				SET valid_until = ((c.granted_at AT TIME ZONE 'UTC') + interval '3 years') AT TIME ZONE 'UTC'
			  WHERE NOT pg_catalog.isfinite(c.valid_until)
				 OR c.valid_until > ((c.granted_at AT TIME ZONE 'UTC') + interval '3 years') AT TIME ZONE 'UTC'
			 RETURNING c.valid_until LOOP
		PERFORM retention._audit('bound_consent', NULL,
								 pg_catalog.jsonb_build_object('valid_until', r.valid_until));
	END LOOP;
END
$$;

CREATE TRIGGER consent_term
	BEFORE INSERT OR UPDATE OF valid_until, granted_at ON retention.consent
	FOR EACH ROW EXECUTE FUNCTION retention._consent_term();

-- Exposure views decide as the rules do: a row is shown for a purpose
-- while retention._window_open() says its window is open (the window
-- capped by its ceiling, counted in UTC calendar time, the billing anchor
-- bounded, a timestamp column read in retention's zone), whatever the
-- reader's TimeZone.  The hold condition reads ended_at in the same zone.
CREATE FUNCTION retention._window_open(purpose text, ended_at "any", billing_anchor "any")
RETURNS boolean
AS 'MODULE_PATHNAME', 'retention_window_open'
LANGUAGE C STABLE PARALLEL SAFE;

-- retention._exposure_sql() is redefined below, with the views' hold and
-- consent check, to use _window_open(); the views are rebuilt there.

/*--------------------------------------------------------------------------
 * Integrity (issue 13, items 8-13, 17, 18, 19a): retention's triggers are
 * known by what they are, not by their names; every loss of enforcement is
 * refused, or audited and shown by report() and verify(); rows cannot leave
 * a protected table through inheritance or DETACH PARTITION; exposure
 * views follow only the table that changed; tagged values outside any
 * protected table are listed and checked.
 *--------------------------------------------------------------------------
 */

-- the expiry trigger functions, by identity
CREATE FUNCTION retention._expiry_functions()
RETURNS oid[]
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT ARRAY['retention._expire_before()'::pg_catalog.regprocedure::pg_catalog.oid,
				 'retention._expire_after()'::pg_catalog.regprocedure::pg_catalog.oid]
$$;

-- does a protected table have an AFTER trigger?  (_create_triggers' rule)
CREATE FUNCTION retention._needs_after_trigger(tbl regclass)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT p.on_expiry = 'delete'
		   OR NOT coalesce((SELECT bool_or(c.purposes OPERATOR(pg_catalog.<@) ARRAY['marketing'])
							  FROM retention.tagged_columns(tbl) c), false)
	  FROM retention.protected_table p WHERE p.relid = tbl
$$;

-- (re)create the expiry triggers of a protected table: as in 1.0, and
-- ENABLE ALWAYS, so that they fire in replica mode too (rows written by a
-- logical replication apply worker, or a session with
-- session_replication_role = replica, are enforced as they are written)
CREATE OR REPLACE FUNCTION retention._create_triggers(tbl regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, retention, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	p			retention.protected_table;
	in_place	boolean;
	prefilter	text;
	after_on	text;
BEGIN
	SELECT * INTO STRICT p FROM retention.protected_table pt WHERE pt.relid = tbl;
	SELECT bool_or(c.purposes OPERATOR(pg_catalog.<@) ARRAY['marketing']) INTO in_place
	  FROM retention.tagged_columns(tbl) c;
	prefilter := CASE WHEN p.billing_anchor IS NULL
					  THEN format('retention._due_at_write(NEW.tableoid, NEW.%I)', p.ended_at)
					  ELSE format('retention._due_at_write(NEW.tableoid, NEW.%I, NEW.%I)',
								  p.ended_at, p.billing_anchor) END;
	-- a row the operator's subscriber did not originate keeps nothing for
	-- billing (issue 15): the AFTER trigger looks at it too
	IF p.originated IS NOT NULL THEN
		prefilter := format('(%s OR NEW.%I IS NOT TRUE)', prefilter, p.originated);
	END IF;
	after_on := CASE WHEN p.on_expiry = 'anonymize'
					 THEN CASE WHEN in_place THEN NULL ELSE 'INSERT' END
					 ELSE CASE WHEN in_place THEN 'UPDATE' ELSE 'INSERT OR UPDATE' END END;
	EXECUTE format('DROP TRIGGER IF EXISTS retention_expire_before ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS retention_expire_after ON %s', tbl);

	EXECUTE format('CREATE TRIGGER retention_expire_before BEFORE %s ON %s '
				   'FOR EACH ROW EXECUTE FUNCTION retention._expire_before()',
				   CASE WHEN in_place THEN 'INSERT OR UPDATE' ELSE 'UPDATE' END, tbl);
	IF after_on IS NOT NULL THEN
		EXECUTE format('CREATE TRIGGER retention_expire_after AFTER %s ON %s '
					   'FOR EACH ROW WHEN (%s) EXECUTE FUNCTION retention._expire_after()',
					   after_on, tbl, prefilter);
	END IF;
	-- one statement: the guard sees both triggers as they end up
	EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER retention_expire_before%s', tbl,
				   CASE WHEN after_on IS NOT NULL THEN ', ENABLE ALWAYS TRIGGER retention_expire_after' ELSE '' END);
END
$$;

-- unprotect: the table leaves the catalog first, so that dropping its
-- triggers is no loss of enforcement; its triggers go by identity
CREATE OR REPLACE FUNCTION retention.unprotect(tbl regclass)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
	t		record;
	citus	boolean;
	unsafe	text;
BEGIN
	DELETE FROM retention.protected_table pt WHERE pt.relid = tbl;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table % is not protected', tbl
			USING ERRCODE = 'undefined_object';
	END IF;
	-- Citus drops the triggers of a table it manages, and its shards', only
	-- with its unsafe triggers allowed: for this statement alone
	citus := retention._citus_problem(tbl) IS NOT NULL;
	IF citus THEN
		unsafe := pg_catalog.current_setting('citus.enable_unsafe_triggers', true);
		PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
	END IF;
	FOR t IN SELECT tg.tgname FROM pg_catalog.pg_trigger tg
			  WHERE tg.tgrelid = tbl AND tg.tgparentid = 0
				AND tg.tgfoid = ANY (retention._expiry_functions()) LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, tbl);
	END LOOP;
	IF citus THEN
		PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', coalesce(unsafe, 'off'), true);
	END IF;
	PERFORM retention._audit('unprotect', tbl::text);
END
$$;

-- ---------------------------------------------------------------------
-- Issue 17: NOT NULL tagged columns, as real writers ship them (Kamailio
-- declares every column NOT NULL DEFAULT ''), are erased to the empty
-- value.  It holds nothing; every tagged type accepts it.  Such a column
-- can be protected when its default is the empty value (what the writer
-- stores when it has nothing is what erasing leaves) and no check
-- constraint names it (erasing must never make a write fail).
-- ---------------------------------------------------------------------
CREATE FUNCTION retention._empty_default(tbl regclass, col name)
RETURNS boolean
AS 'MODULE_PATHNAME', 'retention_empty_default'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

-- the tagged columns of tbl and of its partitions that are NOT NULL and
-- cannot be erased to the empty value, and why
CREATE FUNCTION retention._unerasable_not_null(tbl regclass, OUT rel regclass, OUT attname name,
											   OUT why text)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT l.relid::regclass, a.attname,
		   CASE WHEN NOT retention._empty_default(l.relid::regclass, a.attname)
				THEN 'its default is not the empty value'
				ELSE 'a check constraint names it' END
	  FROM (SELECT t.relid::pg_catalog.oid AS relid FROM pg_catalog.pg_partition_tree(tbl) t
			 UNION
			SELECT tbl::pg_catalog.oid) l
	 CROSS JOIN retention.tagged_columns(tbl) t
	  JOIN pg_catalog.pg_attribute a ON a.attrelid = l.relid AND a.attname = t.attname
									AND a.attnum > 0 AND NOT a.attisdropped
	 WHERE a.attnotnull
	   AND (NOT retention._empty_default(l.relid::regclass, a.attname)
			OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint con
						WHERE con.conrelid = l.relid AND con.contype = 'c'
						  AND a.attnum = ANY (con.conkey)))
	 ORDER BY l.relid::regclass::text, a.attnum
$$;

-- What keeps retention from applying to a protected table now, one line
-- each: its expiry triggers (on the table and on every partition) missing,
-- disabled, or not firing in replica mode; rules, which rewrite what the
-- triggers and the sweep do; inheritance children, whose rows show
-- through the table but are never swept; tagged columns that cannot be
-- erased (NOT NULL without the empty default, or with a check constraint).  Judged from the catalog, so that it holds whoever
-- made the change, event triggers or not.
CREATE FUNCTION retention._enforcement_problems(tbl regclass, OUT kind text, OUT problem text)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	WITH leaves AS (
		SELECT t.relid::pg_catalog.oid AS relid
		  FROM pg_catalog.pg_partition_tree(tbl) t
		 UNION
		SELECT tbl::pg_catalog.oid
	), expected AS (
		SELECT l.relid, f.fn, f.name
		  FROM leaves l,
			   LATERAL (VALUES ('retention._expire_before()'::pg_catalog.regprocedure::pg_catalog.oid,
								'retention_expire_before'::name),
							   ('retention._expire_after()'::pg_catalog.regprocedure::pg_catalog.oid,
								'retention_expire_after'::name)) f(fn, name)
		 WHERE f.name = 'retention_expire_before' OR retention._needs_after_trigger(tbl)
	)
	SELECT 'missing', format('trigger %s is missing on %s', e.name, e.relid::regclass)
	  FROM expected e
	 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger tg
						WHERE tg.tgrelid = e.relid AND tg.tgfoid = e.fn)
	UNION ALL
	SELECT 'disabled', format('trigger %s on %s %s', tg.tgname, tg.tgrelid::regclass,
				  CASE tg.tgenabled WHEN 'D' THEN 'is disabled'
									WHEN 'R' THEN 'fires in replica mode only'
									ELSE 'is not ENABLE ALWAYS: it does not fire in replica mode' END)
	  FROM leaves l JOIN pg_catalog.pg_trigger tg ON tg.tgrelid = l.relid
	 WHERE tg.tgfoid = ANY (retention._expiry_functions()) AND tg.tgenabled <> 'A'
	UNION ALL
	SELECT 'replaced', format('trigger %s on %s runs %s', tg.tgname, tg.tgrelid::regclass, tg.tgfoid::regprocedure)
	  FROM leaves l JOIN pg_catalog.pg_trigger tg ON tg.tgrelid = l.relid
	 WHERE tg.tgname IN ('retention_expire_before', 'retention_expire_after')
	   AND tg.tgfoid <> ALL (retention._expiry_functions())
	UNION ALL
	-- a BEFORE trigger of the table's own that fires after retention's (row
	-- triggers fire in name order) sees the row as retention left it and
	-- can store again what retention erased, at write time, unseen
	SELECT 'order', format('trigger %s on %s fires after %s on %s: it can store again what retention erased; rename it to sort before %s',
						   tg.tgname, tg.tgrelid::regclass, ours.tgname,
						   concat_ws(' or ', CASE WHEN tg.tgtype & ours.tgtype & 4 <> 0 THEN 'INSERT' END,
									 CASE WHEN tg.tgtype & ours.tgtype & 16 <> 0 THEN 'UPDATE' END),
						   ours.tgname)
	  FROM leaves l
	  JOIN pg_catalog.pg_trigger ours ON ours.tgrelid = l.relid
									 AND ours.tgfoid = 'retention._expire_before()'::pg_catalog.regprocedure
	  JOIN pg_catalog.pg_trigger tg ON tg.tgrelid = l.relid
	 WHERE NOT tg.tgisinternal AND tg.tgfoid <> ALL (retention._expiry_functions())
	   AND tg.tgenabled <> 'D'
	   AND tg.tgtype & 3 = 3						-- ROW, BEFORE
	   AND tg.tgtype & ours.tgtype & (4 | 16) <> 0	-- INSERT or UPDATE, as ours
	   AND tg.tgname > ours.tgname COLLATE "C"
	UNION ALL
	SELECT 'rule', format('rule %s on %s rewrites its %s', r.rulename, r.ev_class::regclass,
				  CASE r.ev_type WHEN '2' THEN 'UPDATEs' WHEN '3' THEN 'INSERTs'
								 WHEN '4' THEN 'DELETEs' ELSE 'SELECTs' END)
	  FROM leaves l JOIN pg_catalog.pg_rewrite r ON r.ev_class = l.relid
	UNION ALL
	SELECT 'inheritance', format('inheritance child %s of %s is never swept', i.inhrelid::regclass, i.inhparent::regclass)
	  FROM leaves l
	  JOIN pg_catalog.pg_inherits i ON i.inhparent = l.relid
	  JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
	 WHERE NOT c.relispartition
	UNION ALL
	SELECT 'not null', format('purpose-tagged column %I of %s is NOT NULL and %s: it cannot be erased',
							  u.attname, u.rel, u.why)
	  FROM retention._unerasable_not_null(tbl) u
	UNION ALL
	SELECT 'pseudonym oracle',
		   format('hashed column %I of %s can be read back by %s, who may write the table', m.attname, tbl,
				  array_to_string(ARRAY(SELECT retention._pseudonym_oracles(tbl, m.attname)), ', '))
	  FROM retention.column_method m
	 WHERE m.relid = tbl AND m.method = 'hash'
	   AND EXISTS (SELECT retention._pseudonym_oracles(tbl, m.attname))
$$;

-- the same for the extension itself: its event triggers must fire (the
-- guards of this section, and 1.0's, in replica mode too)
CREATE FUNCTION retention._guard_problems()
RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT format('event trigger %s %s', e.evtname,
				  CASE e.evtenabled WHEN 'D' THEN 'is disabled: DDL is not checked'
									WHEN 'R' THEN 'fires in replica mode only: DDL is not checked'
									ELSE 'is not ENABLE ALWAYS: DDL in replica mode is not checked' END)
	  FROM pg_catalog.pg_event_trigger e
	  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass
								  AND d.objid = e.oid AND d.deptype = 'e'
	  JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid AND x.extname = 'retention'
	 WHERE e.evtenabled IN ('D', 'R')
		OR (e.evtenabled = 'O' AND e.evtname IN ('retention_guard_alter', 'retention_guard_drop',
												  'retention_exposures_before_alter',
												  'retention_exposures_after_alter',
												  'retention_guard_start', 'retention_guard_enforcement',
												  'retention_guard_enforcement_drop'))
	 ORDER BY e.evtname
$$;

-- a loss of enforcement: refused to ordinary roles, audited for
-- retention_admin and superusers (whose change then shows in report() and
-- makes verify() raise until it is undone)
CREATE FUNCTION retention._enforcement_lost(tbl regclass, what text, kinds text[],
											message text, hint text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	problems	text[] := ARRAY(SELECT e.problem FROM retention._enforcement_problems(tbl) e
								 WHERE e.kind = ANY (kinds));
BEGIN
	IF cardinality(problems) = 0 THEN
		RETURN;
	END IF;
	IF NOT retention._is_admin() THEN
		RAISE EXCEPTION '%', message
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = array_to_string(problems, '; ') || '.',
				  HINT = hint;
	END IF;
	PERFORM retention._audit('enforcement_lost', tbl::text,
							 jsonb_build_object('command', what, 'problems', to_jsonb(problems)));
END
$$;

-- a Citus shard's copies of retention's triggers (Citus makes them from the
-- table's when it was protected, then distributed: they refuse the writes
-- that reach the shard where the table is not protected): disabling or
-- dropping one is refused to ordinary roles, audited for retention_admin
-- and superusers, as on a protected table; the shard is not in the catalog
CREATE FUNCTION retention._shard_trigger_lost(tbl regclass, what text, problem text,
											  message text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, retention, pg_temp
AS $$
BEGIN
	IF retention._citus_problem(tbl) IS NULL THEN
		RETURN;
	END IF;
	IF NOT retention._is_admin() THEN
		RAISE EXCEPTION '%', message
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = problem || '.',
				  HINT = 'Retention''s triggers stay ENABLE ALWAYS on the shards Citus copied them to; see docs/citus.md.';
	END IF;
	PERFORM retention._audit('enforcement_lost', tbl::text,
							 jsonb_build_object('command', what, 'problems', jsonb_build_array(problem)));
END
$$;
REVOKE ALL ON FUNCTION retention._shard_trigger_lost(regclass, text, text, text) FROM PUBLIC;

-- ddl_command_end: retention's triggers are not renamed nor replaced,
-- disabled or made to skip replica mode, no rule is put on a protected
-- table, no tagged column of one becomes NOT NULL unless it can be erased
-- to the empty value
CREATE FUNCTION retention._guard_enforcement()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	cmd		record;
	tg		pg_catalog.pg_trigger;
	rel		regclass;
	a		record;
BEGIN
	FOR cmd IN SELECT DISTINCT c.classid, c.objid, c.command_tag FROM pg_catalog.pg_event_trigger_ddl_commands() c
				WHERE c.objid IS NOT NULL LOOP
		IF cmd.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN
			SELECT * INTO tg FROM pg_catalog.pg_trigger t WHERE t.oid = cmd.objid;
			CONTINUE WHEN NOT FOUND;
			IF cmd.command_tag = 'ALTER TRIGGER' AND tg.tgfoid = ANY (retention._expiry_functions()) THEN
				RAISE EXCEPTION 'cannot rename or alter retention''s trigger on %', tg.tgrelid::regclass
					USING ERRCODE = 'insufficient_privilege',
						  DETAIL = format('Trigger %s runs %s.', tg.tgname, tg.tgfoid::regprocedure),
						  HINT = 'Use retention.unprotect() to take a table out of retention.';
			END IF;
			rel := retention._is_protected(tg.tgrelid::regclass);
			-- CREATE OR REPLACE TRIGGER over one of retention's (creating
			-- retention's own is protect()'s business)
			IF rel IS NOT NULL AND tg.tgname IN ('retention_expire_before', 'retention_expire_after')
			   AND tg.tgfoid <> ALL (retention._expiry_functions()) THEN
				IF NOT retention._is_admin() THEN
					RAISE EXCEPTION 'only retention_admin can drop or change retention''s triggers'
						USING ERRCODE = 'insufficient_privilege',
							  DETAIL = format('%s %s on %s.', cmd.command_tag, tg.tgname, tg.tgrelid::regclass),
							  HINT = 'Use retention.unprotect() to take a table out of retention.';
				END IF;
				PERFORM retention._enforcement_lost(rel, cmd.command_tag, ARRAY['missing', 'replaced'], NULL, NULL);
			END IF;
		ELSIF cmd.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN
			SELECT retention._is_protected(r.ev_class::regclass) INTO rel
			  FROM pg_catalog.pg_rewrite r WHERE r.oid = cmd.objid;
			IF rel IS NOT NULL THEN
				PERFORM retention._enforcement_lost(rel, cmd.command_tag, ARRAY['rule'],
					format('cannot create a rule on protected table %s', rel),
					'A rule rewrites what the expiry triggers and the sweep do; use a trigger of your own, or a view.');
			END IF;
		ELSIF cmd.classid = 'pg_catalog.pg_class'::pg_catalog.regclass THEN
			rel := retention._is_protected(cmd.objid::regclass);
			IF rel IS NULL THEN
				SELECT * INTO tg FROM pg_catalog.pg_trigger t
				 WHERE t.tgrelid = cmd.objid AND t.tgfoid = ANY (retention._expiry_functions())
				   AND t.tgenabled <> 'A'
				 ORDER BY t.tgname LIMIT 1;
				IF FOUND THEN
					PERFORM retention._shard_trigger_lost(cmd.objid::regclass, cmd.command_tag,
						format('trigger %s on %s %s', tg.tgname, cmd.objid::regclass,
							   CASE tg.tgenabled WHEN 'D' THEN 'is disabled' WHEN 'R' THEN 'fires in replica mode only'
												 ELSE 'is not ENABLE ALWAYS' END),
						'only retention_admin can disable retention''s triggers');
				END IF;
				CONTINUE;
			END IF;
			-- an erased value is NULL, or the empty value of a NOT NULL
			-- column whose default it is: for every role, as protect()
			-- refuses the others (SET NOT NULL, DROP or SET DEFAULT, ADD
			-- COLUMN, ADD CONSTRAINT ... CHECK)
			FOR a IN SELECT * FROM retention._unerasable_not_null(rel) LOOP
				RAISE EXCEPTION 'purpose-tagged column "%" of relation % cannot be NOT NULL unless it can be erased to the empty value', a.attname, a.rel
					USING ERRCODE = 'invalid_table_definition',
						  DETAIL = format('The column is NOT NULL and %s; a NOT NULL tagged column is erased to the empty value, which must be its default and pass its constraints.', a.why),
						  HINT = 'Keep the column nullable, or NOT NULL with DEFAULT '''' and no check constraint on it.';
			END LOOP;
			PERFORM retention._enforcement_lost(rel, cmd.command_tag, ARRAY['disabled'],
				'only retention_admin can disable retention''s triggers',
				'Retention''s triggers stay ENABLE ALWAYS; use retention.unprotect() to take a table out of retention.');
		END IF;
	END LOOP;
END
$$;

-- sql_drop: a dropped trigger (whatever its name) that leaves a protected
-- table without one of retention's
CREATE FUNCTION retention._guard_enforcement_drop()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	o		record;
	rel		regclass;
	done	regclass[] := '{}';
BEGIN
	FOR o IN SELECT * FROM pg_catalog.pg_event_trigger_dropped_objects() d
			  WHERE d.object_type = 'trigger' LOOP
		rel := pg_catalog.to_regclass(format('%I.%I', o.address_names[1], o.address_names[2]));
		-- a shard's copy, named by Citus after the shard id
		IF retention._is_protected(rel) IS NULL AND rel IS NOT NULL
		   AND o.address_names[3] ~ '^retention_expire_(before|after)_[0-9]+$' THEN
			PERFORM retention._shard_trigger_lost(rel, 'DROP TRIGGER',
				format('trigger %s on %s is dropped', o.address_names[3], rel),
				'only retention_admin can drop retention''s triggers');
		END IF;
		rel := retention._is_protected(rel);
		CONTINUE WHEN rel IS NULL OR rel = ANY (done);
		done := done || rel;
		PERFORM retention._enforcement_lost(rel, 'DROP TRIGGER', ARRAY['missing'],
			'only retention_admin can drop retention''s triggers',
			'Use retention.unprotect() to take a table out of retention.');
	END LOOP;
END
$$;

-- tables protected under 1.0: their triggers become ENABLE ALWAYS
DO $always$
DECLARE
	t		record;
BEGIN
	FOR t IN SELECT tg.tgrelid::regclass AS rel, tg.tgname
			   FROM pg_catalog.pg_trigger tg
			   JOIN retention.protected_table p ON p.relid = tg.tgrelid
			  WHERE tg.tgfoid = ANY (retention._expiry_functions()) AND tg.tgenabled = 'O' LOOP
		EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', t.rel, t.tgname);
	END LOOP;
END
$always$;

-- The two C event trigger functions below read the statement's table name
-- as the statement does, in the caller's search_path: they must NOT pin
-- one (their own SQL is schema-qualified throughout).
CREATE FUNCTION retention._guard_start()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'retention_guard_start'
LANGUAGE C SECURITY DEFINER;

CREATE EVENT TRIGGER retention_guard_start ON ddl_command_start
	WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
	EXECUTE FUNCTION retention._guard_start();
CREATE EVENT TRIGGER retention_guard_enforcement ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE', 'ALTER TRIGGER', 'CREATE TRIGGER', 'CREATE RULE')
	EXECUTE FUNCTION retention._guard_enforcement();
CREATE EVENT TRIGGER retention_guard_enforcement_drop ON sql_drop
	EXECUTE FUNCTION retention._guard_enforcement_drop();

-- every event trigger of retention fires in replica mode too (a superuser's
-- session_replication_role = replica would otherwise skip them all)
ALTER EVENT TRIGGER retention_guard_alter ENABLE ALWAYS;
ALTER EVENT TRIGGER retention_guard_drop ENABLE ALWAYS;
ALTER EVENT TRIGGER retention_exposures_before_alter ENABLE ALWAYS;
ALTER EVENT TRIGGER retention_exposures_after_alter ENABLE ALWAYS;
ALTER EVENT TRIGGER retention_guard_start ENABLE ALWAYS;
ALTER EVENT TRIGGER retention_guard_enforcement ENABLE ALWAYS;
ALTER EVENT TRIGGER retention_guard_enforcement_drop ENABLE ALWAYS;


-- what each protected table's tagged columns were when it was protected:
-- a column retyped back to text since then has lost its tag (report()
-- shows it, verify() raises) until the table is protected again
ALTER TABLE retention.protected_table ADD COLUMN tagged_at_protect jsonb;
UPDATE retention.protected_table p
   SET tagged_at_protect = coalesce(
		(SELECT l.details -> 'columns' FROM retention.audit_log l
		  WHERE l.action = 'protect' AND l.object = p.relid::text
		  ORDER BY l.id DESC LIMIT 1),
		p.columns);

CREATE FUNCTION retention._protected_table_tagged()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, retention, pg_temp
AS $$
BEGIN
	NEW.tagged_at_protect := coalesce(NEW.tagged_at_protect, NEW.columns);
	RETURN NEW;
END
$$;
CREATE TRIGGER protected_table_tagged
	BEFORE INSERT ON retention.protected_table
	FOR EACH ROW EXECUTE FUNCTION retention._protected_table_tagged();

CREATE FUNCTION retention._anonymized(value text, type regtype)
RETURNS boolean
AS 'MODULE_PATHNAME', 'retention_anonymized'
LANGUAGE C STABLE PARALLEL SAFE;

-- Relations outside retention that hold purpose-tagged columns: copies
-- (CREATE TABLE AS, SELECT INTO, materialized views, inheritance children,
-- detached partitions, temporary tables) that no trigger or sweep reaches.
CREATE FUNCTION retention._unprotected_copies(OUT rel regclass, OUT attname name, OUT type regtype,
											  OUT how text, OUT readable boolean)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	WITH tagged AS (
		SELECT t.oid FROM pg_catalog.pg_type t
		 WHERE t.typnamespace = 'retention'::regnamespace
		   AND t.typname IN ('msisdn', 'imsi', 'imei', 'cell', 'ident')
		UNION
		SELECT d.oid FROM pg_catalog.pg_type d
		  JOIN pg_catalog.pg_type t ON t.oid = d.typbasetype
		 WHERE d.typtype = 'd' AND t.typnamespace = 'retention'::regnamespace
	)
	SELECT c.oid::regclass, a.attname, a.atttypid::regtype,
		   CASE WHEN c.relkind = 'm' THEN 'materialized view'
				WHEN c.relpersistence = 't' THEN 'temporary table'
				WHEN c.relispartition THEN 'partition of unprotected ' ||
					(SELECT i.inhparent::regclass::text FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid)
				WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid)
					THEN 'inheritance child of ' ||
					(SELECT string_agg(i.inhparent::regclass::text, ', ') FROM pg_catalog.pg_inherits i
					  WHERE i.inhrelid = c.oid)
				ELSE 'table' END,
		   (c.relpersistence <> 't' OR c.relnamespace = pg_catalog.pg_my_temp_schema())
		   AND (c.relkind <> 'm' OR c.relispopulated)
	  FROM pg_catalog.pg_class c
	  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	 WHERE c.relkind IN ('r', 'm')
	   AND c.relnamespace <> 'retention'::regnamespace
	   AND a.atttypid IN (SELECT oid FROM tagged)
	   AND retention._is_protected(c.oid::regclass) IS NULL
	 ORDER BY c.oid::regclass::text, a.attnum
$$;

-- the columns of a protected table that were tagged when it was protected
-- and are not any more (retyped to text, varchar...)
CREATE FUNCTION retention._lost_tags(OUT rel regclass, OUT attname name, OUT type regtype,
									 OUT purposes text[])
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT p.relid, a.attname, a.atttypid::regtype,
		   ARRAY(SELECT jsonb_array_elements_text(p.tagged_at_protect -> k.k))
	  FROM retention.protected_table p
	  CROSS JOIN LATERAL jsonb_object_keys(coalesce(p.tagged_at_protect, '{}')) k(k)
	  JOIN pg_catalog.pg_attribute a ON a.attrelid = p.relid AND a.attname = k.k
									AND a.attnum > 0 AND NOT a.attisdropped
	 WHERE NOT EXISTS (SELECT 1 FROM retention.tagged_columns(p.relid) t WHERE t.attname = k.k)
	 ORDER BY p.relid::text, a.attnum
$$;

-- 1.0's report() and verify() keep their work; the new ones add what
-- integrity needs
ALTER FUNCTION retention.report() RENAME TO _report_tables;
ALTER FUNCTION retention.verify() RENAME TO _verify_overdue;
REVOKE ALL ON FUNCTION retention._report_tables() FROM PUBLIC, retention_admin;
REVOKE ALL ON FUNCTION retention._verify_overdue() FROM PUBLIC, retention_admin;

CREATE FUNCTION retention.report()
RETURNS TABLE ("table" regclass, "column" name, kind text, type regtype, purposes text[],
			   "window" interval, method text, rows_in_clear bigint, oldest_clear timestamptz,
			   overdue_rows bigint, held_rows bigint, last_sweep timestamptz, note text,
			   rules text[], floor interval, ceiling interval, basis text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
SET intervalstyle = postgres
AS $$
DECLARE
	r		record;
	n		bigint;
BEGIN
	-- the regime in force
	SELECT g.code, g.title, g.superseded_by INTO r FROM retention.regime g
	 WHERE g.code = retention.regime_in_force();
	kind := 'regime'; basis := r.code;
	note := pg_catalog.format('rules of regime %s: %s', r.code, r.title)
			|| CASE WHEN r.superseded_by IS NOT NULL
					THEN pg_catalog.format('; superseded by %s: see retention.set_regime(%L, dry_run => true)',
										   r.superseded_by, r.superseded_by) ELSE '' END;
	RETURN NEXT;
	kind := NULL; basis := NULL; note := NULL;
	FOR r IN SELECT * FROM retention._regime_problems() g LOOP
		kind := 'not enforced'; note := r.problem;
		RETURN NEXT;
	END LOOP;
	-- sweeps that cleared data before their floor (verify() raises)
	FOR r IN SELECT * FROM retention._early_erasures() LOOP
		"table" := r.relid; kind := 'early erasure'; note := r.problem;
		RETURN NEXT;
	END LOOP;
	"table" := NULL;
	RETURN QUERY SELECT * FROM retention._report_tables();
	-- protected tables that retention does not fully enforce
	FOR r IN SELECT p.relid, e.problem FROM retention.protected_table p,
				LATERAL retention._enforcement_problems(p.relid) e
			  ORDER BY p.relid::text, e.problem LOOP
		"table" := r.relid; "column" := NULL; kind := 'not enforced'; type := NULL;
		purposes := NULL; "window" := NULL; method := NULL; rows_in_clear := NULL;
		oldest_clear := NULL; overdue_rows := NULL; held_rows := NULL; last_sweep := NULL;
		note := r.problem;
		RETURN NEXT;
	END LOOP;
	FOR r IN SELECT g AS problem FROM retention._guard_problems() g LOOP
		"table" := NULL; "column" := NULL; kind := 'not enforced'; type := NULL;
		note := r.problem;
		RETURN NEXT;
	END LOOP;
	-- Citus tables, and an unknown Citus (section "Citus: fail closed")
	FOR r IN SELECT * FROM retention._citus_problems() LOOP
		"table" := r.rel; "column" := NULL; kind := 'not enforced'; type := NULL;
		note := r.problem;
		RETURN NEXT;
	END LOOP;
	-- protected tables the sweep cannot drive by what is due (issue 16)
	FOR r IN SELECT p.relid, d.problem FROM retention.protected_table p,
				LATERAL retention._sweep_drive_problems(p.relid) d(problem)
			  ORDER BY p.relid::text, d.problem LOOP
		"table" := r.relid; "column" := NULL; kind := 'slow sweep'; type := NULL;
		purposes := NULL; "window" := NULL; method := NULL; rows_in_clear := NULL;
		oldest_clear := NULL; overdue_rows := NULL; held_rows := NULL; last_sweep := NULL;
		note := r.problem;
		RETURN NEXT;
	END LOOP;
	-- exposure views emptied because other views depend on them
	FOR r IN SELECT DISTINCT x.relid, v.v FROM retention.exposure x
			   JOIN pg_catalog.pg_class c ON c.oid = x.relid
			   JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
			  CROSS JOIN LATERAL pg_catalog.to_regclass(format('%I.%I', ns.nspname, x.view_name)) v(v)
			  WHERE v.v IS NOT NULL AND retention._exposure_is_stub(x.relid, v.v)
			  ORDER BY 1, 2 LOOP
		"table" := r.relid; "column" := NULL; kind := 'stale exposure'; type := NULL;
		purposes := NULL; rows_in_clear := NULL;
		note := format('view %s shows no rows: views that depend on it kept it from following an ALTER TABLE; drop them, then unexpose and expose again', r.v);
		RETURN NEXT;
	END LOOP;
	-- columns that lost their tag since protect()
	FOR r IN SELECT * FROM retention._lost_tags() LOOP
		"table" := r.rel; "column" := r.attname; kind := 'lost tag'; type := r.type;
		purposes := r.purposes;
		note := format('tagged for %s when protected, now of type %s: nothing applies retention to it',
					   array_to_string(r.purposes, ', '), r.type);
		RETURN NEXT;
	END LOOP;
	-- tagged values outside any protected table
	FOR r IN SELECT * FROM retention._unprotected_copies() LOOP
		"table" := r.rel; "column" := r.attname; kind := 'unprotected copy'; type := r.type;
		purposes := (SELECT t.purposes FROM retention.tagged_columns(r.rel) t WHERE t.attname = r.attname);
		rows_in_clear := NULL;
		IF r.readable THEN
			EXECUTE format('SELECT count(*) FROM ONLY %s x WHERE NOT retention._anonymized(x.%I::text, %L)',
						   r.rel, r.attname, r.type)
			   INTO n;
			rows_in_clear := n;
		END IF;
		note := format('%s holding purpose-tagged values that no trigger or sweep reaches', r.how);
		RETURN NEXT;
	END LOOP;
	-- connection-source data kept with other traffic data (section
	-- "Separation" below)
	RETURN QUERY SELECT s.*, NULL::text[], NULL::interval, NULL::interval, NULL::text
				   FROM retention._report_separation() s;
END
$$;
COMMENT ON FUNCTION retention.report() IS
	'Per protected table and column: purposes, window, values in clear, overdue and held rows, last sweep, the copies a sweep does not reach, and whatever keeps retention from applying';
REVOKE ALL ON FUNCTION retention.report() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.report() TO retention_admin;

CREATE FUNCTION retention.verify()
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	r			record;
	n			bigint;
	problems	text[] := '{}';
BEGIN
	problems := problems || ARRAY(SELECT format('%s: %s', p.relid, e.problem)
									FROM retention.protected_table p,
										 LATERAL retention._enforcement_problems(p.relid) e
								   ORDER BY p.relid::text, e.problem);
	problems := problems || ARRAY(SELECT g FROM retention._guard_problems() g);
	problems := problems || ARRAY(SELECT g.problem FROM retention._regime_problems() g);
	problems := problems || ARRAY(SELECT e.problem FROM retention._early_erasures() e);
	problems := problems || ARRAY(SELECT format('%s: column %I is tagged for %s, which no rule of regime %s covers',
												p.relid, t.attname, array_to_string(t.purposes, ', '),
												retention.regime_in_force())
									FROM retention.protected_table p,
										 LATERAL retention.tagged_columns(p.relid) t
								   WHERE t.purposes <> '{}' AND retention._column_rules(p.relid, t.attname) = '{}'
								   ORDER BY p.relid::text, t.attname);
	problems := problems || ARRAY(SELECT concat_ws(': ', c.rel, c.problem) FROM retention._citus_problems() c);
	problems := problems || ARRAY(SELECT format('%s: column %I lost its tag (%s) since it was protected',
												l.rel, l.attname, array_to_string(l.purposes, ', '))
									FROM retention._lost_tags() l);
	-- a copy has no ended_at, hence no deadline of its own: any value in
	-- it that is neither erased nor generalized is kept past what retention
	-- can vouch for
	FOR r IN SELECT c.rel, array_agg(c.attname ORDER BY c.attname) AS cols,
					array_agg(c.type ORDER BY c.attname) AS types
			   FROM retention._unprotected_copies() c WHERE c.readable
			  GROUP BY c.rel ORDER BY c.rel::text LOOP
		EXECUTE format('SELECT count(*) FROM ONLY %s x WHERE %s', r.rel,
					   (SELECT string_agg(format('NOT retention._anonymized(x.%I::text, %L)', c, t), ' OR ')
						  FROM unnest(r.cols, r.types) u(c, t)))
		   INTO n;
		IF n > 0 THEN
			problems := problems || format('%s: unprotected copy holding %s rows with purpose-tagged values', r.rel, n);
		END IF;
	END LOOP;
	IF cardinality(problems) > 0 THEN
		RAISE EXCEPTION 'retention is not enforced everywhere'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = array_to_string(problems, '; ') || '.',
				  HINT = 'See retention.report(), rows of kind "not enforced", "lost tag" and "unprotected copy".';
	END IF;
	PERFORM retention._verify_overdue();
END
$$;
COMMENT ON FUNCTION retention.verify() IS
	'Raise if any value of a protected table is past its deadline, if retention does not fully apply to one, or if tagged values sit where no sweep reaches (for monitoring)';
REVOKE ALL ON FUNCTION retention.verify() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.verify() TO retention_admin;

-- Exposure views read holds and consents through this function, run as
-- retention's owner: the view's owner (the table's) need not read
-- retention.hold or retention.consent, and a reader learns nothing of a
-- hold or a consent but what the view shows.  It answers, for one row of
-- a protected table (by tableoid and ctid), whether a hold (billing,
-- law_enforcement) or an active consent (marketing) keeps it in the
-- purpose's view, and only to a role that may read that view.
CREATE FUNCTION retention._exposure_kept(rel oid, row_ctid tid, purpose text)
RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	root	regclass := retention._is_protected(rel::regclass);
	p		retention.protected_table;
	sub		text;
	ended	timestamptz;
	found_	boolean;
BEGIN
	IF root IS NULL OR row_ctid IS NULL THEN
		RETURN false;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM retention.exposure e
					 JOIN pg_catalog.pg_class c ON c.oid = e.relid
					WHERE e.relid = root AND e.purpose = _exposure_kept.purpose
					  AND pg_catalog.has_table_privilege(retention._outer_role(),
							format('%I.%I', (SELECT n.nspname FROM pg_catalog.pg_namespace n
											  WHERE n.oid = c.relnamespace), e.view_name), 'SELECT')) THEN
		RETURN false;
	END IF;
	SELECT * INTO p FROM retention.protected_table pt WHERE pt.relid = root;
	IF p.subscriber IS NULL THEN
		RETURN false;
	END IF;
	-- a timestamp column is read in retention's zone, as the rules read it
	EXECUTE format('SELECT x.%I::text, %s FROM ONLY %s x WHERE x.ctid = $1',
				   p.subscriber,
				   CASE WHEN (SELECT a.atttypid FROM pg_catalog.pg_attribute a
							   WHERE a.attrelid = rel AND a.attname = p.ended_at)
							 = 'pg_catalog.timestamp'::pg_catalog.regtype
						THEN format('retention._instant(x.%I)', p.ended_at)
						ELSE format('x.%I::timestamptz', p.ended_at) END,
				   rel::regclass)
	   INTO sub, ended USING row_ctid;
	IF sub IS NULL THEN
		RETURN false;
	END IF;
	IF purpose = 'marketing' THEN
		RETURN EXISTS (SELECT 1 FROM retention.consent c WHERE c.subscriber = sub
						 AND retention._consent_active(c.withdrawn_at, c.valid_until, c.contract_end, now()));
	END IF;
	IF purpose = 'location' THEN
		RETURN retention._location_consent_active(sub, now());
	END IF;
	-- what a hold keeps is shown to the purposes it is kept for: a billing
	-- dispute to billing, an order to those of investigations
	RETURN EXISTS (SELECT 1 FROM retention.hold h
					WHERE h.relid = root AND h.subscriber = sub
					  AND retention._hold_active(h.released_at, h.until, now()) AND ended BETWEEN h.from_ts AND h.to_ts
					  AND CASE WHEN purpose = 'billing' THEN h.reason = 'billing_dispute'
							   WHEN purpose IN ('law_enforcement', 'connection', 'national_security')
							   THEN h.reason IN ('judicial_request', 'quick_freeze')
							   ELSE false END);
END
$$;
GRANT EXECUTE ON FUNCTION retention._exposure_kept(oid, tid, text) TO PUBLIC;

CREATE OR REPLACE FUNCTION retention._exposure_sql(tbl regclass, purpose text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	p		retention.protected_table;
	pol		retention.policy%ROWTYPE;
	cols	text;
	cond	text;
BEGIN
	SELECT * INTO STRICT p FROM retention.protected_table pt WHERE pt.relid = tbl;
	SELECT * INTO pol FROM retention.policy po WHERE po.purpose = _exposure_sql.purpose;
	-- the columns the regime in force keeps for the purpose (issue 15)
	SELECT string_agg(format('x.%I', a.attname), ', ' ORDER BY a.attnum) INTO cols
	  FROM pg_catalog.pg_attribute a
	 WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped
	   AND (NOT EXISTS (SELECT 1 FROM retention.tagged_columns(tbl) t WHERE t.attname = a.attname)
			OR purpose = ANY (retention._column_rules(tbl, a.attname)));
	IF pol.purpose IS NULL THEN
		-- no rule of the regime in force: nothing is kept for it
		cond := 'false';
	ELSIF pol.condition IN ('consent', 'location_consent') THEN
		cond := CASE WHEN p.subscriber IS NULL THEN 'false'
					 ELSE format('retention._exposure_kept(x.tableoid, x.ctid, %L)', purpose) END;
	ELSE
		-- the window as the rules decide it: capped by its ceiling as
		-- calendar time, the anchor bounded, timestamps in retention's zone,
		-- a decree in force when the communication ended
		cond := format('retention._window_open(%L, x.%I, %s)', purpose, p.ended_at,
					   CASE WHEN pol.anchor = 'billing_anchor' AND p.billing_anchor IS NOT NULL
							THEN format('x.%I', p.billing_anchor)
							ELSE 'NULL::timestamptz' END);
		-- billing only what the operator's subscriber originated
		IF pol.condition = 'originated' AND p.originated IS NOT NULL THEN
			cond := format('(%s AND x.%I IS TRUE)', cond, p.originated);
		END IF;
		IF p.subscriber IS NOT NULL AND purpose IN ('billing', 'law_enforcement', 'connection', 'national_security') THEN
			cond := cond || format(' OR retention._exposure_kept(x.tableoid, x.ctid, %L)', purpose);
		END IF;
	END IF;
	RETURN format('SELECT %s FROM %s x WHERE %s', cols, tbl, cond);
END
$$;

-- does anything but its own rule depend on a view?
CREATE FUNCTION retention._view_has_dependents(v regclass)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
					 JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
												 AND r.oid = d.objid
					WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = v
					  AND r.ev_class <> v)
$$;

-- ddl_command_start of ALTER TABLE on tbl (from C: retention._exposures_drop):
-- each exposure view of tbl is dropped, to be rebuilt at the end; one that
-- other views depend on (someone else's) is not dropped but emptied in
-- place (same columns, no rows, no longer reading tbl), so that neither
-- the ALTER nor their view fails, and it is rebuilt at the end if its
-- columns still fit
CREATE FUNCTION retention._exposures_release(tbl regclass)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	e		record;
	v		regclass;
	stub	text;
BEGIN
	FOR e IN SELECT DISTINCT x.view_name, n.nspname
			   FROM retention.exposure x
			   JOIN pg_catalog.pg_class c ON c.oid = x.relid
			   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			  WHERE x.relid = tbl LOOP
		v := pg_catalog.to_regclass(format('%I.%I', e.nspname, e.view_name));
		CONTINUE WHEN v IS NULL;
		IF NOT retention._view_has_dependents(v) THEN
			EXECUTE format('DROP VIEW %s', v);
		ELSE
			SELECT string_agg(format('NULL::%s%s AS %I', pg_catalog.format_type(a.atttypid, a.atttypmod),
									 CASE WHEN a.attcollation NOT IN (0, 100)
										  THEN format(' COLLATE %s', (SELECT format('%I.%I', cn.nspname, co.collname)
																		FROM pg_catalog.pg_collation co
																		JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
																	   WHERE co.oid = a.attcollation))
										  ELSE '' END,
									 a.attname), ', ' ORDER BY a.attnum)
			  INTO stub
			  FROM pg_catalog.pg_attribute a WHERE a.attrelid = v AND a.attnum > 0 AND NOT a.attisdropped;
			EXECUTE format('CREATE OR REPLACE VIEW %s WITH (security_barrier) AS SELECT %s WHERE false', v, stub);
		END IF;
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION retention._exposures_release(regclass) FROM PUBLIC;

CREATE OR REPLACE FUNCTION retention._exposures_drop()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'retention_exposures_before_alter'
LANGUAGE C SECURITY DEFINER;

-- an exposure view emptied by _exposures_release(): it no longer reads its table
CREATE FUNCTION retention._exposure_is_stub(tbl regclass, v regclass)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
						 JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
													 AND r.oid = d.objid
						WHERE r.ev_class = v AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
						  AND d.refobjid = tbl)
$$;

-- the exposure views of tables relids, rebuilt from each table as it now
-- is (after _exposures_release() dropped or emptied them)
CREATE FUNCTION retention._exposures_restore(relids oid[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	e		record;
	nsp		name;
	v		regclass;
BEGIN
	FOR e IN SELECT x.relid, x.purpose, x.role, x.view_name,
					row_number() OVER (PARTITION BY x.relid, x.purpose ORDER BY x.role) AS n
			   FROM retention.exposure x
			  WHERE x.relid::pg_catalog.oid = ANY (relids)
			  ORDER BY x.relid, x.purpose, x.role LOOP
		SELECT n.nspname INTO nsp FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.oid = e.relid;
		v := pg_catalog.to_regclass(format('%I.%I', nsp, e.view_name));
		IF e.n = 1 THEN
			IF v IS NULL THEN
				PERFORM retention._create_exposure(e.relid, e.purpose, e.role, e.view_name);
			ELSIF retention._exposure_is_stub(e.relid, v) THEN
				-- kept for views that depend on it: back to its definition if
				-- its columns allow, else left empty (report() says so)
				BEGIN
					EXECUTE format('CREATE OR REPLACE VIEW %s WITH (security_barrier) AS %s', v,
								   retention._exposure_sql(e.relid, e.purpose));
				EXCEPTION WHEN invalid_table_definition OR feature_not_supported OR datatype_mismatch THEN
					NULL;
				END;
			END IF;
		ELSE
			EXECUTE format('GRANT SELECT ON %I.%I TO %I', nsp, e.view_name, e.role);
		END IF;
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION retention._exposures_restore(oid[]) FROM PUBLIC;

-- ddl_command_end of ALTER TABLE: the exposure views of the tables it
-- altered, and only those, are rebuilt from the table as it now is
CREATE OR REPLACE FUNCTION retention._exposures_create()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
BEGIN
	PERFORM retention._exposures_restore(ARRAY(SELECT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c
												WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass));
END
$$;

-- views exposed under 1.0 read retention.hold directly: rebuilt
DO $exposures$
DECLARE
	e		record;
BEGIN
	FOR e IN SELECT DISTINCT x.relid, x.purpose, x.view_name, n.nspname
			   FROM retention.exposure x
			   JOIN pg_catalog.pg_class c ON c.oid = x.relid
			   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace LOOP
		CONTINUE WHEN pg_catalog.to_regclass(format('%I.%I', e.nspname, e.view_name)) IS NULL;
		-- an extension script replaces only its members: the view is one for
		-- the moment it is replaced (its grants and dependents stay)
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
						WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
						  AND d.objid = pg_catalog.to_regclass(format('%I.%I', e.nspname, e.view_name))
						  AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e') THEN
			EXECUTE format('ALTER EXTENSION retention ADD VIEW %I.%I', e.nspname, e.view_name);
		END IF;
		EXECUTE format('CREATE OR REPLACE VIEW %I.%I WITH (security_barrier) AS %s', e.nspname, e.view_name,
					   retention._exposure_sql(e.relid, e.purpose));
		-- the view stays the operator's, not a member of the extension
		IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
					WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
					  AND d.objid = pg_catalog.to_regclass(format('%I.%I', e.nspname, e.view_name))
					  AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e') THEN
			EXECUTE format('ALTER EXTENSION retention DROP VIEW %I.%I', e.nspname, e.view_name);
		END IF;
	END LOOP;
END
$exposures$;

/*------------------------------------------------------------------------
 * Locks no other role can take (issue 13, item 2)
 *
 * 1.0 serialized sweeps and hold() with advisory locks on fixed keys,
 * (x'52455445' << 32 | relid) and (x'52455448' << 32 | relid), which any
 * role could take with pg_advisory_lock(): one session then made every
 * sweep skip a table, hung the worker, or blocked hold() while a sweep
 * deleted the rows it was to keep.  The locks are now of an advisory class
 * no SQL function produces (locks.c); hold() and anonymize() take them
 * through retention._lock(), which PUBLIC cannot execute.  Only the lock
 * line of hold() and anonymize() changes.
 *------------------------------------------------------------------------
 */

CREATE FUNCTION retention._lock(tbl regclass, kind text, shared boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'retention_lock'
LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION retention._lock(regclass, text, boolean) FROM PUBLIC;
COMMENT ON FUNCTION retention._lock(regclass, text, boolean) IS
	'Take retention''s own sweep or hold lock on a table until the transaction ends (superusers only)';

CREATE OR REPLACE FUNCTION retention.hold(tbl regclass, subscriber text, from_ts timestamptz,
							   to_ts timestamptz, reason text, reference text,
							   until timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	v		text;
	id		bigint;
BEGIN
	IF reason IS NULL OR reason NOT IN ('billing_dispute', 'judicial_request', 'quick_freeze') THEN
		RAISE EXCEPTION 'unknown hold reason "%"', reason
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Valid reasons are billing_dispute (holds what is kept for billing), judicial_request and quick_freeze (hold the whole row).';
	END IF;
	IF reason <> 'billing_dispute' AND until IS NULL THEN
		RAISE EXCEPTION 'a % hold needs the date its order ends', reason
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Give until => the end the order sets.';
	END IF;
	IF until IS NOT NULL AND until <= now() THEN
		RAISE EXCEPTION 'a hold must end in the future'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('until is %s.', until);
	END IF;
	IF from_ts IS NULL OR to_ts IS NULL OR from_ts > to_ts THEN
		RAISE EXCEPTION 'invalid hold period'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'from_ts and to_ts are required, and from_ts must not be after to_ts.';
	END IF;
	IF reference IS NULL OR btrim(reference) = '' THEN
		RAISE EXCEPTION 'a hold needs a reference'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Give the invoice, case or order number that justifies it.';
	END IF;
	v := retention._subscriber_value(tbl, subscriber);
	-- wait for the sweep batch in flight on this table, and keep new ones
	-- out until the hold is committed: a lock no other role can take (locks.c)
	PERFORM retention._lock(tbl, 'hold');
	-- a day given as a date covers the whole day
	IF to_ts = date_trunc('day', to_ts) THEN
		to_ts := to_ts + interval '1 day' - interval '1 microsecond';
	END IF;
	INSERT INTO retention.hold (relid, subscriber, from_ts, to_ts, reason, reference, until)
		VALUES (tbl, v, from_ts, to_ts, reason, reference, until)
		RETURNING retention.hold.id INTO id;
	PERFORM retention._audit('hold', tbl::text,
							 jsonb_build_object('hold', id, 'reason', reason, 'reference', reference,
												'from', from_ts, 'to', to_ts, 'until', until));
	RETURN id;
END
$$;

-- Issue 15: a subject's request never erases what must be kept (GDPR
-- art. 17(3)(b), CPCE L34-1 II bis and III): _anonymize_subscriber()
-- keeps it (policy.c's subject-request cutoffs), and the result says, per
-- rule, how many values were kept and until when
DROP FUNCTION retention.anonymize(regclass, text);
CREATE FUNCTION retention.anonymize(tbl regclass, subscriber text,
	OUT rows_anonymized bigint, OUT rows_deleted bigint, OUT rows_held bigint, OUT kept jsonb)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	v		text := retention._subscriber_value(tbl, subscriber);
	p		retention.protected_table;
	r		record;
	n		bigint;
	last	timestamptz;
	ended	text;
BEGIN
	-- a hold being placed on this table finishes first
	PERFORM retention._lock(tbl, 'hold', shared => true);
	SELECT a.rows_anonymized, a.rows_deleted, a.rows_held
	  INTO rows_anonymized, rows_deleted, rows_held
	  FROM retention._anonymize_subscriber(tbl, v, true) a;
	-- what must be kept of them stays: say what, and until when
	kept := '[]';
	SELECT * INTO p FROM retention.protected_table pt WHERE pt.relid = retention._is_protected(tbl);
	ended := CASE WHEN (SELECT a.atttypid FROM pg_catalog.pg_attribute a
						 WHERE a.attrelid = tbl AND a.attname = p.ended_at) = 'timestamp'::regtype
				  THEN pg_catalog.format('retention._instant(x.%I)', p.ended_at)
				  ELSE pg_catalog.format('x.%I', p.ended_at) END;
	FOR r IN SELECT pol.purpose, pol."window", pol.condition, pol.legal_basis,
					pg_catalog.array_agg(t.attname ORDER BY t.attname) AS cols,
					pg_catalog.array_agg(t.type ORDER BY t.attname) AS types
			   FROM retention.tagged_columns(tbl) t
			   JOIN retention.policy pol ON pol.purpose = ANY (retention._column_rules(tbl, t.attname))
			  WHERE pol.kind = 'must_keep'
			  GROUP BY 1, 2, 3, 4 ORDER BY 1 LOOP
		EXECUTE pg_catalog.format('SELECT count(*), max(%s) FROM %s x WHERE x.%I::text = $1 AND %s IS NOT NULL AND (%s)%s',
								  ended, tbl, p.subscriber, ended,
								  (SELECT pg_catalog.string_agg(pg_catalog.format('NOT retention._anonymized(x.%I::text, %L)', c, ty), ' OR ')
									 FROM unnest(r.cols, r.types) u(c, ty)),
								  CASE WHEN r.condition = 'decree'
									   THEN pg_catalog.format(' AND retention._basis_at(%L, %s) IS NOT NULL', r.purpose, ended)
									   ELSE '' END)
		   INTO n, last USING v;
		IF n > 0 THEN
			kept := kept || pg_catalog.jsonb_build_object('purpose', r.purpose, 'rows', n,
														  'until', retention._instant_plus(last, r."window"),
														  'citation', r.legal_basis);
		END IF;
	END LOOP;
	-- counts only: the audit log outlives the data and must not keep it
	PERFORM retention._audit('anonymize_subscriber', tbl::text,
							 jsonb_build_object('rows_anonymized', rows_anonymized,
												'rows_deleted', rows_deleted,
												'rows_held', rows_held,
												'kept', (SELECT coalesce(jsonb_agg(k - 'until'), '[]')
														   FROM jsonb_array_elements(kept) k)));
END
$$;
-- an instant plus a span, in UTC calendar arithmetic as the rules count
CREATE FUNCTION retention._instant_plus(t timestamptz, span interval)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$ SELECT ((t AT TIME ZONE 'UTC') + span) AT TIME ZONE 'UTC' $$;
COMMENT ON FUNCTION retention.anonymize(regclass, text) IS
	'Anonymize now everything of one subscriber in a protected table that need not be kept: holds and what the law requires kept excepted (audited)';
REVOKE ALL ON FUNCTION retention.anonymize(regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.anonymize(regclass, text) TO retention_admin;

-- alive: its session still holds the table's sweep lock (locks.c: classid
-- the kind, objsubid retention's lock class 0x5254)
CREATE OR REPLACE VIEW retention.sweep_progress AS
	SELECT l.relid AS "table", l.phase, l.rows_scanned AS rows_done, l.rows_estimate,
		   round(100.0 * l.rows_scanned / nullif(l.rows_estimate, 0), 1) AS percent,
		   round(l.rows_scanned / nullif(extract(epoch FROM clock_timestamp() - l.started_at), 0))
			   AS rows_per_second,
		   l.rows_anonymized, l.rows_deleted, l.rows_held, l.rows_skipped, l.paused,
		   l.started_at, l.run_by, l.run_id
	  FROM retention.sweep_log l
	 WHERE l.status = 'running'
	   AND EXISTS (SELECT 1 FROM pg_catalog.pg_locks k
					WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = x'5254'::integer
					  AND k.classid = x'52455445'::bigint::oid AND k.objid = l.relid::oid);

/*------------------------------------------------------------------------
 * Key bytes: superusers only (issue 13, item 15)
 *
 * export_keys() returned every key's bytes to retention_admin, and
 * import_key() let it plant chosen bytes as the current key (and so
 * compute every future pseudonym); a pg_read_all_data member, a typical
 * backup role, read retention.key directly, since that role bypasses table
 * privileges.  Now both functions are for superusers only (EXECUTE revoked
 * from retention_admin, and checked again inside, so that a GRANT EXECUTE
 * to another role does not open them), and retention.key has row-level
 * security with no policy: pg_read_all_data does not bypass row security,
 * so it reads no row.  Superusers and the table's owner (the extension's
 * owner, a superuser) are not subject to it; the C code that hashes reads
 * the table directly.
 *------------------------------------------------------------------------
 */

-- (with the exposure event triggers off: run by this script, they would
-- rebuild every exposure view as a member of the extension)
ALTER EVENT TRIGGER retention_exposures_before_alter DISABLE;
ALTER EVENT TRIGGER retention_exposures_after_alter DISABLE;
ALTER TABLE retention.key ENABLE ROW LEVEL SECURITY;
ALTER EVENT TRIGGER retention_exposures_before_alter ENABLE ALWAYS;
ALTER EVENT TRIGGER retention_exposures_after_alter ENABLE ALWAYS;
COMMENT ON TABLE retention.key IS
	'Keys of method hash (HMAC-SHA-256); readable by superusers only (row security: not by pg_read_all_data), never dumped';

CREATE FUNCTION retention._require_superuser(what text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
BEGIN
	IF NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r
					  WHERE r.rolname = retention._outer_role()), false) THEN
		RAISE EXCEPTION 'permission denied to %', what
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'Only superusers may read or set pseudonymization key bytes.';
	END IF;
END
$$;
REVOKE ALL ON FUNCTION retention._require_superuser(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION retention.export_keys()
RETURNS TABLE (id integer, key bytea, created_at timestamptz, retired_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
BEGIN
	PERFORM retention._require_superuser('export keys');
	PERFORM retention._audit('export_keys', NULL,
							 jsonb_build_object('keys', (SELECT coalesce(jsonb_agg(k.id ORDER BY k.id), '[]'::jsonb)
														   FROM retention.key k)));
	RETURN QUERY
		SELECT k.id, k.key, k.created_at, k.retired_at FROM retention.key k ORDER BY k.created_at, k.id;
END
$$;
COMMENT ON FUNCTION retention.export_keys() IS
	'Every pseudonymization key, bytes included, for import_key() after a restore (superusers only, audited)';
REVOKE ALL ON FUNCTION retention.export_keys() FROM retention_admin;

CREATE OR REPLACE FUNCTION retention.import_key(id integer, key bytea, created_at timestamptz,
									 retired_at timestamptz)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	same	boolean;
BEGIN
	PERFORM retention._require_superuser('import keys');
	IF import_key.id IS NULL OR import_key.key IS NULL OR import_key.created_at IS NULL THEN
		RAISE EXCEPTION 'key id, key and creation time must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF import_key.id NOT BETWEEN 1 AND 999999999 THEN
		RAISE EXCEPTION 'key id % is out of range', import_key.id
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Import the rows of retention.export_keys() as they are.';
	END IF;
	IF octet_length(import_key.key) <> 32 THEN
		RAISE EXCEPTION 'key % is % bytes long, not 32', import_key.id, octet_length(import_key.key)
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Import the rows of retention.export_keys() as they are.';
	END IF;

	LOCK TABLE retention.key IN SHARE ROW EXCLUSIVE MODE;
	SELECT k.key = import_key.key INTO same FROM retention.key k WHERE k.id = import_key.id;
	IF same THEN
		RETURN false;
	ELSIF NOT same THEN
		RAISE EXCEPTION 'key % already exists with other contents', import_key.id
			USING ERRCODE = 'unique_violation',
				  DETAIL = 'Two different keys cannot share an id: their pseudonyms would be confused.';
	END IF;

	-- the exported current key becomes this database's current key
	IF import_key.retired_at IS NULL THEN
		UPDATE retention.key k SET retired_at = now() WHERE k.retired_at IS NULL;
	END IF;
	INSERT INTO retention.key (id, key, created_at, retired_at)
		VALUES (import_key.id, import_key.key, import_key.created_at, import_key.retired_at);
	PERFORM retention._audit('import_key', import_key.id::text,
							 jsonb_build_object('created_at', import_key.created_at,
												'retired_at', import_key.retired_at,
												'current', import_key.retired_at IS NULL));
	RETURN true;
END
$$;
COMMENT ON FUNCTION retention.import_key(integer, bytea, timestamptz, timestamptz) IS
	'Add a key exported by retention.export_keys() from another database (superusers only, audited)';
REVOKE ALL ON FUNCTION retention.import_key(integer, bytea, timestamptz, timestamptz) FROM retention_admin;

/*------------------------------------------------------------------------
 * The database's owner can pg_dump its database (issue 13, item 19)
 *
 * pg_dump saves the rows of the extension's configuration tables (those
 * marked with pg_extension_config_dump) and the state of their sequences;
 * a non-superuser that may not read them gets "permission denied for
 * sequence hold_id_seq" and no dump at all.  The owner of the database (as
 * Kamailio's kamailio role owns its database and CDR tables) may now read
 * them, through the predefined role pg_database_owner (PostgreSQL 14 on),
 * whose only member is the current database's owner.  It changes nothing
 * there: writing is still for retention's functions, and retention.key,
 * which is never dumped, stays out of its reach.
 *------------------------------------------------------------------------
 */

DO $grant$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pg_database_owner') THEN
		GRANT SELECT ON retention.audit_log, retention.window_setting, retention.protected_table,
			retention.column_method, retention.sweep_log, retention.hold, retention.consent,
			retention.exposure TO pg_database_owner;
		GRANT SELECT ON SEQUENCE retention.sweep_log_id_seq, retention.sweep_run_seq,
			retention.hold_id_seq TO pg_database_owner;
	END IF;
END
$grant$;

/*------------------------------------------------------------------------
 * Who holds retention_admin (issue 13, item 3)
 *
 * Membership of retention_admin is what lets a role change policy, so an
 * auditor must see who has it: directly, through other roles, as a
 * superuser, or (before PostgreSQL 16) as a CREATEROLE role, which can
 * grant itself any non-superuser role, retention_admin included.  A
 * function of its own, so that report()'s rows keep their shape.
 *------------------------------------------------------------------------
 */

CREATE FUNCTION retention.admins(OUT role name, OUT how text, OUT via name[],
								 OUT granted_by name, OUT can_login boolean)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	WITH RECURSIVE m (member, via, grantor) AS (
		SELECT a.member, ARRAY[]::name[], a.grantor
		  FROM pg_catalog.pg_auth_members a
		  JOIN pg_catalog.pg_roles r ON r.oid = a.roleid
		 WHERE r.rolname = 'retention_admin'
		UNION ALL
		SELECT a.member, m.via || r.rolname, a.grantor
		  FROM m
		  JOIN pg_catalog.pg_auth_members a ON a.roleid = m.member
		  JOIN pg_catalog.pg_roles r ON r.oid = m.member
	)
	SELECT r.rolname,
		   CASE WHEN cardinality(m.via) = 0 THEN 'member'
				ELSE 'member through ' || array_to_string(m.via, ', ') END,
		   m.via, pg_catalog.pg_get_userbyid(m.grantor), r.rolcanlogin
	  FROM m JOIN pg_catalog.pg_roles r ON r.oid = m.member
	UNION ALL
	SELECT r.rolname, 'superuser', NULL, NULL, r.rolcanlogin
	  FROM pg_catalog.pg_roles r WHERE r.rolsuper
	UNION ALL
	SELECT r.rolname, 'CREATEROLE: can grant itself retention_admin', NULL, NULL, r.rolcanlogin
	  FROM pg_catalog.pg_roles r
	 WHERE r.rolcreaterole AND NOT r.rolsuper
	   AND pg_catalog.current_setting('server_version_num')::integer < 160000
	ORDER BY 1, 2
$$;
COMMENT ON FUNCTION retention.admins() IS
	'Every role that holds retention_admin (directly, through other roles, as a superuser) or can grant it to itself';
REVOKE ALL ON FUNCTION retention.admins() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.admins() TO retention_admin;

/*------------------------------------------------------------------------
 * Sweeps run as retention_sweeper, not as the bootstrap superuser
 * (issue 13, "Also")
 *
 * The background worker swept as the superuser it connects as.  It now
 * sets its role to retention_sweeper for the sweep, a cluster-wide role
 * that cannot log in and may only call the sweep: the sweep
 * does its own catalog work as the extension's owner and the batches on a
 * table as the table's owner, restricted (sweep.c), so the role needs no
 * right on any table.  sweep_log.run_by names it.
 *------------------------------------------------------------------------
 */

DO $role$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'retention_sweeper') THEN
		CREATE ROLE retention_sweeper NOLOGIN;
	END IF;
END
$role$;
GRANT EXECUTE ON PROCEDURE retention.sweep(regclass, integer, boolean) TO retention_sweeper;

/*------------------------------------------------------------------------
 * _is_admin() reads the catalog, not a relation the caller planted
 * (issue 13, item 1)
 *
 * Its pg_roles was looked up in the caller's temp schema first: a table
 * owner's CREATE TEMP TABLE pg_roles made it true.  Catalog names are now
 * qualified; the last section of this script pins every function's
 * search_path with pg_temp last.
 *------------------------------------------------------------------------
 */

CREATE OR REPLACE FUNCTION retention._is_admin()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT r.rolsuper OR pg_catalog.pg_has_role(r.oid, 'retention_admin', 'MEMBER')
	  FROM pg_catalog.pg_roles r WHERE r.rolname = retention._outer_role()
$$;

--------------------------------------------------------------------------
-- The auditor: retention_auditor reads, changes nothing (issue 19)
--
-- A NOLOGIN role, cluster-wide like retention_admin, for an auditor or a
-- monitoring system: report(), verify(), the audit log and its
-- verification, the sweep and write logs, the holds register without the
-- subscriber, the consent ledger as counts (consent_summary), the policy,
-- and the metrics view.  Its only write is record_dossier(), which appends
-- a dossier's hash to the audit log, audited as such.
--------------------------------------------------------------------------

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'retention_auditor') THEN
		CREATE ROLE retention_auditor NOLOGIN;
	END IF;
END
$$;

-- report() and verify() take no argument, run as retention's owner and only
-- read: nothing the caller passes reaches them
GRANT EXECUTE ON FUNCTION retention.report() TO retention_auditor;
GRANT EXECUTE ON FUNCTION retention.verify() TO retention_auditor;
GRANT EXECUTE ON FUNCTION retention.verify_audit_log() TO retention_auditor;
GRANT SELECT ON retention.audit_log, retention.sweep_log, retention.sweep_progress,
	retention.write_log TO retention_auditor;
-- the holds register: reference, authority, dates and release, not whose
GRANT SELECT (id, relid, from_ts, to_ts, reason, reference, until, placed_at, placed_by,
			  released_at, released_by, release_note) ON retention.hold TO retention_auditor;

-- the consent ledger, counted: no subscriber number
CREATE VIEW retention.consent_summary AS
	SELECT s.state, pg_catalog.count(c.subscriber) AS consents
	  FROM (VALUES (1, 'active'), (2, 'expired'), (3, 'withdrawn')) s(n, state)
	  LEFT JOIN retention.consent c
		ON s.state = CASE WHEN c.withdrawn_at IS NOT NULL THEN 'withdrawn'
						  WHEN LEAST(c.valid_until, c.contract_end) <= pg_catalog.now() THEN 'expired'
						  ELSE 'active' END
	 GROUP BY s.n, s.state
	 ORDER BY s.n;
COMMENT ON VIEW retention.consent_summary IS
	'Marketing consents counted by state (active, expired, withdrawn): the ledger without subscriber numbers';
REVOKE ALL ON retention.consent_summary FROM PUBLIC;
GRANT SELECT ON retention.consent_summary TO retention_admin, retention_auditor;

-- a dossier's SHA-256 (of its HTML, and of its PDF if made), appended to
-- the audit log: whoever holds the document can check it against the log,
-- and the log says when and by whom it was made
CREATE FUNCTION retention.record_dossier(sha256 text, generated_at timestamptz DEFAULT NULL,
										 pdf_sha256 text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	h	text;
BEGIN
	IF sha256 IS NULL THEN
		RAISE EXCEPTION 'the hash of a dossier must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	FOREACH h IN ARRAY ARRAY[sha256, pdf_sha256] LOOP
		IF h !~ '^[0-9a-f]{64}$' THEN
			RAISE EXCEPTION 'invalid SHA-256 digest: "%"', pg_catalog.left(h, 80)
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Give 64 lowercase hexadecimal digits, as sha256sum prints them.';
		END IF;
	END LOOP;
	RETURN retention._audit('dossier', NULL,
							pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
								'sha256', sha256, 'pdf_sha256', pdf_sha256, 'generated_at', generated_at)));
END
$$;
COMMENT ON FUNCTION retention.record_dossier(text, timestamptz, text) IS
	'Record a compliance dossier''s SHA-256 in the audit log';
REVOKE ALL ON FUNCTION retention.record_dossier(text, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.record_dossier(text, timestamptz, text) TO retention_admin, retention_auditor;

-- Monitoring: one row per metric.  Reads the protected tables through
-- report() (as long as a count(*) of each: scrape every few minutes, not
-- every few seconds), so the reader needs EXECUTE on report() and on
-- verify_audit_log(): retention_admin and retention_auditor have both.
CREATE VIEW retention.metrics AS
	WITH r AS (SELECT * FROM retention.report()),
	last_run AS (SELECT pg_catalog.max(l.run_id) AS run_id FROM retention.sweep_log l),
	a AS (SELECT * FROM retention.verify_audit_log())
	SELECT m.metric, m."table", m.value
	  FROM (
		SELECT 1 AS n, 'overdue_rows' AS metric, r."table"::text AS "table",
			   pg_catalog.max(r.overdue_rows)::double precision AS value
		  FROM r WHERE r.kind = 'tagged' GROUP BY r."table"
		UNION ALL
		SELECT 2, 'held_rows', r."table"::text, pg_catalog.max(r.held_rows)::double precision
		  FROM r WHERE r.kind = 'tagged' GROUP BY r."table"
		UNION ALL
		SELECT 3, 'oldest_clear_age_seconds', r."table"::text,
			   coalesce(pg_catalog.date_part('epoch', pg_catalog.now() - pg_catalog.min(r.oldest_clear)), 0)
		  FROM r WHERE r.kind = 'tagged' GROUP BY r."table"
		UNION ALL
		SELECT 4, 'not_enforced', NULL,
			   pg_catalog.count(*) FILTER (WHERE r.kind IN ('not enforced', 'lost tag'))::double precision FROM r
		UNION ALL
		SELECT 5, 'unprotected_copy_rows', NULL,
			   coalesce(pg_catalog.sum(r.rows_in_clear) FILTER (WHERE r.kind = 'unprotected copy'), 0)::double precision
		  FROM r
		UNION ALL
		SELECT 6, 'last_sweep_age_seconds', NULL,
			   (SELECT pg_catalog.date_part('epoch', pg_catalog.now() - pg_catalog.max(coalesce(l.finished_at, l.started_at)))
				  FROM retention.sweep_log l, last_run WHERE l.run_id = last_run.run_id)
		UNION ALL
		SELECT 7, 'last_sweep_failed', NULL,
			   (SELECT pg_catalog.count(*) FILTER (WHERE l.status IN ('failed', 'interrupted'))
				  FROM retention.sweep_log l, last_run WHERE l.run_id = last_run.run_id)::double precision
		UNION ALL
		SELECT 8, 'last_sweep_rows_skipped', NULL,
			   (SELECT coalesce(pg_catalog.sum(l.rows_skipped), 0)
				  FROM retention.sweep_log l, last_run WHERE l.run_id = last_run.run_id)::double precision
		UNION ALL
		SELECT 9, 'sweep_failures_24h', NULL,
			   (SELECT pg_catalog.count(*) FROM retention.sweep_log l
				 WHERE l.status IN ('failed', 'interrupted')
				   AND l.started_at > pg_catalog.now() - interval '24 hours')::double precision
		UNION ALL
		SELECT 10, 'write_failures_24h', NULL,
			   (SELECT coalesce(pg_catalog.sum(w.rows), 0) FROM retention.write_log w
				 WHERE w.action = 'failed' AND w.at > pg_catalog.now() - interval '24 hours')::double precision
		UNION ALL
		SELECT 11, 'audit_chain_valid', NULL, (SELECT a.valid::integer FROM a)::double precision
		UNION ALL
		SELECT 12, 'audit_rows', NULL, (SELECT a.rows_checked FROM a)::double precision
	  ) m
	 ORDER BY m.n, m."table";
COMMENT ON VIEW retention.metrics IS
	'One row per monitoring metric: overdue and held rows and the oldest clear value per table, enforcement, the last sweep, failures, the audit chain';
REVOKE ALL ON retention.metrics FROM PUBLIC;
GRANT SELECT ON retention.metrics TO retention_admin, retention_auditor;

--------------------------------------------------------------------------
-- The compliance dossier (issue 19, item 2)
--
-- retention.dossier() returns a self-contained HTML document (no script, no
-- external resource; charts in inline SVG) describing the database's
-- retention as of now: policy and legal bases, every protected column,
-- the age of the oldest clear value against its window, overdue and held
-- rows, the holds register, consents counted, the sweep history, the audit
-- chain and its head, and whatever copies or gaps report() finds.  It
-- names no subscriber: it reads holds without their subscriber column and
-- consents through consent_summary.  SECURITY INVOKER: it reads what its
-- caller may read (retention_auditor or retention_admin).  tools/dossier
-- writes it to a file, prints it to PDF and records both hashes with
-- record_dossier().
--------------------------------------------------------------------------

CREATE FUNCTION retention._html(v anyelement)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
		pg_catalog.replace(v::text, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'),
		'''', '&#39;')
$$;

-- a horizontal bar chart in SVG: one bar per label, a tick per mark (a
-- window), values and marks in the same unit
CREATE FUNCTION retention._svg_bars(title text, labels text[], vals float8[], marks float8[],
									unit text, mark_label text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	n		integer := coalesce(pg_catalog.cardinality(labels), 0);
	top		float8;
	w		integer := 560;		-- width of the plotting area
	x0		integer := 230;		-- left margin, for the labels
	rowh	integer := 26;
	hgt		integer;
	out		text;
	i		integer;
	bw		float8;
	mx		float8;
BEGIN
	IF n = 0 THEN
		RETURN '<p class="none">Nothing to chart.</p>';
	END IF;
	SELECT GREATEST(pg_catalog.max(x), 1) INTO top
	  FROM pg_catalog.unnest(vals || marks) x WHERE x IS NOT NULL;
	top := top * 1.1;
	hgt := 40 + n * rowh + 30;
	out := pg_catalog.format('<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="%s" height="%s" viewBox="0 0 %s %s">'
							 '<title>%s</title>'
							 '<text x="0" y="16" class="ct">%s</text>',
							 x0 + w + 90, hgt, x0 + w + 90, hgt, retention._html(title), retention._html(title));
	FOR i IN 1 .. n LOOP
		bw := coalesce(vals[i], 0) / top * w;
		out := out || pg_catalog.format(
			'<text x="%s" y="%s" text-anchor="end" class="cl">%s</text>'
			'<rect class="bar%s" x="%s" y="%s" width="%s" height="%s"><title>%s: %s %s</title></rect>'
			'<text x="%s" y="%s" class="cv">%s %s</text>',
			x0 - 6, 40 + (i - 1) * rowh + 15, retention._html(labels[i]),
			CASE WHEN marks[i] IS NOT NULL AND vals[i] > marks[i] THEN ' over' ELSE '' END,
			x0, 40 + (i - 1) * rowh + 3, pg_catalog.round(bw::numeric, 1), rowh - 8,
			retention._html(labels[i]), pg_catalog.round(coalesce(vals[i], 0)::numeric, 1), unit,
			x0 + pg_catalog.round(bw::numeric, 1) + 4, 40 + (i - 1) * rowh + 15,
			pg_catalog.round(coalesce(vals[i], 0)::numeric, 1), unit);
		IF marks[i] IS NOT NULL THEN
			mx := x0 + marks[i] / top * w;
			out := out || pg_catalog.format(
				'<line class="mark" x1="%s" y1="%s" x2="%s" y2="%s"><title>%s: %s %s</title></line>',
				pg_catalog.round(mx::numeric, 1), 40 + (i - 1) * rowh, pg_catalog.round(mx::numeric, 1),
				40 + i * rowh - 4, retention._html(mark_label), pg_catalog.round(marks[i]::numeric, 1), unit);
		END IF;
	END LOOP;
	out := out || pg_catalog.format('<line class="axis" x1="%s" y1="34" x2="%s" y2="%s"/>', x0, x0, 40 + n * rowh);
	IF pg_catalog.array_position(marks, NULL) IS NULL OR EXISTS (SELECT 1 FROM pg_catalog.unnest(marks) m WHERE m IS NOT NULL) THEN
		out := out || pg_catalog.format(
			'<line class="mark" x1="%s" y1="%s" x2="%s" y2="%s"/><text x="%s" y="%s" class="cl">%s</text>',
			x0, hgt - 12, x0 + 20, hgt - 12, x0 + 26, hgt - 8, retention._html(mark_label));
	END IF;
	RETURN out || '</svg>';
END
$$;

CREATE FUNCTION retention.dossier()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, retention, pg_temp
SET intervalstyle = postgres
SET datestyle = 'ISO, YMD'
SET timezone = 'UTC'
AS $$
DECLARE
	h		text;
	a		record;
	rows	text;
	labels	text[];
	vals	float8[];
	marks	float8[];
	n_over	bigint;
	n_held	bigint;
	rep		jsonb;
	runs	jsonb;
BEGIN
	-- report() once: it reads every protected table
	SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(rr)), '[]') INTO rep FROM retention.report() rr;
	SELECT * INTO a FROM retention.verify_audit_log();
	SELECT coalesce(pg_catalog.sum(d.overdue_rows), 0), coalesce(pg_catalog.sum(d.held_rows), 0)
	  INTO n_over, n_held FROM pg_catalog.jsonb_to_recordset(rep) AS d("table" text, "column" text, kind text, type text, purposes text[], "window" interval, method text, rows_in_clear bigint, oldest_clear timestamptz, overdue_rows bigint, held_rows bigint, last_sweep timestamptz, note text) WHERE d.kind = 'tagged';

	h := pg_catalog.format($h$<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="generator" content="retention %s">
<meta name="generated" content="%s">
<title>Retention compliance dossier: %s, %s</title>
<style>
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10pt; margin: 2em; color: #111; }
h1 { font-size: 18pt; margin-bottom: 0.2em; } h2 { font-size: 13pt; border-bottom: 1px solid #888; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; } th, td { border: 1px solid #aaa; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #eee; } td.n { text-align: right; } .none { color: #555; font-style: italic; }
.ok { color: #060; font-weight: bold; } .bad { color: #b00; font-weight: bold; }
svg.chart { display: block; margin: 0.5em 0; } .ct { font-weight: bold; font-size: 11px; } .cl, .cv { font-size: 10px; }
rect.bar { fill: #4a7ab5; } rect.bar.over { fill: #c0392b; } line.mark { stroke: #000; stroke-width: 2; stroke-dasharray: 3 2; } line.axis { stroke: #444; }
code { font-size: 9pt; } @media print { h2 { page-break-after: avoid; } table, svg { page-break-inside: avoid; } }
</style></head><body>
<h1>Retention compliance dossier</h1>
<p>Database <b>%s</b>, generated <b>%s UTC</b> by <b>%s</b> with retention %s on %s.</p>
<p>Summary: <span class="%s">%s rows overdue</span>, %s rows held past their deadline, audit chain <span class="%s">%s</span> (%s rows, head %s).</p>
$h$,
		retention._html((SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'retention')),
		pg_catalog.to_char(pg_catalog.now(), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
		retention._html(pg_catalog.current_database()), pg_catalog.to_char(pg_catalog.now(), 'YYYY-MM-DD'),
		retention._html(pg_catalog.current_database()),
		pg_catalog.to_char(pg_catalog.now(), 'YYYY-MM-DD HH24:MI:SS'),
		retention._html(session_user),
		retention._html((SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'retention')),
		retention._html(pg_catalog.split_part(pg_catalog.version(), ',', 1)),
		CASE WHEN n_over = 0 THEN 'ok' ELSE 'bad' END, n_over, n_held,
		CASE WHEN a.valid THEN 'ok' ELSE 'bad' END, CASE WHEN a.valid THEN 'valid' ELSE 'BROKEN' END,
		a.rows_checked, coalesce(a.head_id::text, 'none'));

	-- 1. the regime and the policy
	h := h || '<h2>1. Law and policy in force</h2>';
	SELECT pg_catalog.format('<p>Legal regime in force: <b>%s</b>, %s%s (<code>retention.regime</code>, switched with <code>retention.set_regime()</code>). French Code des postes et des communications électroniques (CPCE), article L34-1 and R10-13 to R10-14: traffic data are erased or made anonymous, except what the rules below keep; what a rule <i>must keep</i> may not be erased before its floor.</p>',
							 retention._html(g.code), retention._html(g.title),
							 CASE WHEN g.superseded_by IS NOT NULL
								  THEN pg_catalog.format(', <span class="bad">superseded by %s</span>', retention._html(g.superseded_by))
								  ELSE '' END)
	  INTO rows FROM retention.regime g WHERE g.code = retention.regime_in_force();
	h := h || coalesce(rows, '');
	SELECT pg_catalog.string_agg(pg_catalog.format('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>',
			retention._html(p.purpose), retention._html(replace(p.kind, '_', ' ')), coalesce(retention._html(p.floor), ''),
			coalesce(retention._html(p."window"), 'each consent''s own'),
			coalesce(retention._html(p.ceiling), 'the consent''s end'),
			retention._html(replace(p.condition, '_', ' ')), retention._html(p.legal_basis)), '' ORDER BY p.purpose)
	  INTO rows FROM retention.policy p;
	h := h || '<table><tr><th>purpose</th><th>kind</th><th>legal floor</th><th>window</th><th>legal ceiling</th><th>condition</th><th>legal basis</th></tr>'
		   || coalesce(rows, '') || '</table>';
	SELECT pg_catalog.string_agg(pg_catalog.format('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>',
			retention._html(b.basis), retention._html(b.reference),
			pg_catalog.to_char(b.valid_from AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
			pg_catalog.to_char(b.valid_to AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')), '' ORDER BY b.valid_from, b.id)
	  INTO rows FROM retention.legal_basis b;
	h := h || '<p>Dated legal bases declared (<code>retention.legal_basis</code>, UTC):</p>'
		   || CASE WHEN rows IS NULL THEN '<p>none: nothing is kept for national security.</p>'
				   ELSE '<table><tr><th>basis</th><th>reference</th><th>from</th><th>to</th></tr>' || rows || '</table>' END;
	SELECT pg_catalog.string_agg(pg_catalog.format('<li>%s set to %s on %s</li>', retention._html(l.object),
			retention._html(l.details->>'new'), pg_catalog.to_char(l.at, 'YYYY-MM-DD')), '' ORDER BY l.id)
	  INTO rows FROM retention.audit_log l WHERE l.action = 'set_window';
	IF rows IS NOT NULL THEN
		h := h || '<p>Window changes (audit log):</p><ul>' || rows || '</ul>';
	END IF;

	-- 2. tables and columns
	h := h || '<h2>2. Protected tables and columns</h2>';
	SELECT pg_catalog.string_agg(pg_catalog.format(
			'<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td class="n">%s</td><td>%s</td><td class="n">%s</td><td class="n">%s</td><td>%s</td></tr>',
			retention._html(d."table"), retention._html(d."column"), retention._html(d.type),
			retention._html(pg_catalog.array_to_string(d.purposes, ', ')),
			coalesce(retention._html(d."window"), 'consent'),
			retention._html((SELECT pg_catalog.string_agg(p.legal_basis, '; ' ORDER BY p.purpose)
							   FROM retention.policy p WHERE p.purpose = ANY (d.purposes))),
			retention._html(d.method), d.rows_in_clear,
			coalesce(pg_catalog.to_char(d.oldest_clear, 'YYYY-MM-DD HH24:MI'), '-'),
			d.overdue_rows, d.held_rows,
			coalesce(pg_catalog.to_char(d.last_sweep, 'YYYY-MM-DD HH24:MI'), 'never')), ''
			ORDER BY d."table"::text, d."column")
	  INTO rows FROM pg_catalog.jsonb_to_recordset(rep) AS d("table" text, "column" text, kind text, type text, purposes text[], "window" interval, method text, rows_in_clear bigint, oldest_clear timestamptz, overdue_rows bigint, held_rows bigint, last_sweep timestamptz, note text) WHERE d.kind = 'tagged';
	h := h || CASE WHEN rows IS NULL THEN '<p class="none">No protected table.</p>' ELSE
		'<table><tr><th>table</th><th>column</th><th>type</th><th>purposes</th><th>window</th><th>legal basis</th><th>on expiry</th><th>rows in clear</th><th>oldest in clear</th><th>overdue</th><th>held</th><th>last sweep</th></tr>'
		|| rows || '</table>' END;
	SELECT pg_catalog.string_agg(pg_catalog.format('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>',
			retention._html(p.relid), retention._html(p.ended_at), retention._html(p.on_expiry),
			retention._html(p.subscriber)), '' ORDER BY p.relid::text)
	  INTO rows FROM retention.protected_table p;
	IF rows IS NOT NULL THEN
		h := h || '<p>Deadlines count from:</p><table><tr><th>table</th><th>end of the call</th><th>on expiry</th><th>subscriber column</th></tr>'
			   || rows || '</table>';
	END IF;

	-- 3. the age of what is in clear against each window
	SELECT pg_catalog.array_agg(d."table"::text || '.' || d."column" ORDER BY d."table"::text, d."column"),
		   pg_catalog.array_agg(coalesce(pg_catalog.date_part('epoch', pg_catalog.now() - d.oldest_clear) / 86400, 0)
								ORDER BY d."table"::text, d."column"),
		   pg_catalog.array_agg(pg_catalog.date_part('epoch', (pg_catalog.now() - (pg_catalog.now() - d."window"))) / 86400
								ORDER BY d."table"::text, d."column")
	  INTO labels, vals, marks
	  FROM pg_catalog.jsonb_to_recordset(rep) AS d("table" text, "column" text, kind text, type text, purposes text[], "window" interval, method text, rows_in_clear bigint, oldest_clear timestamptz, overdue_rows bigint, held_rows bigint, last_sweep timestamptz, note text) WHERE d.kind = 'tagged';
	h := h || '<h2>3. Age of the oldest value in clear, against its window</h2>'
		   || retention._svg_bars('Oldest value in clear (days); dashed: the window', labels, vals, marks, 'd', 'window')
		   || '<p>A red bar is older than its window: held by a hold, or overdue. Marketing columns have no window of their own: each consent''s.</p>';
	h := h || pg_catalog.format('<p>Overdue rows: <b class="%s">%s</b>. Rows held past their deadline: <b>%s</b>.</p>',
								CASE WHEN n_over = 0 THEN 'ok' ELSE 'bad' END, n_over, n_held);

	-- 4. holds
	SELECT pg_catalog.string_agg(pg_catalog.format(
			'<tr><td class="n">%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s to %s</td><td>%s</td><td>%s by %s</td><td>%s</td></tr>',
			x.id, retention._html(x.relid), retention._html(x.reason), retention._html(x.reference),
			pg_catalog.to_char(x.from_ts, 'YYYY-MM-DD'), pg_catalog.to_char(x.to_ts, 'YYYY-MM-DD'),
			coalesce(pg_catalog.to_char(x.until, 'YYYY-MM-DD'), '-'),
			pg_catalog.to_char(x.placed_at, 'YYYY-MM-DD'), retention._html(x.placed_by),
			CASE WHEN x.released_at IS NULL THEN 'in force'
				 ELSE pg_catalog.format('released %s by %s%s', pg_catalog.to_char(x.released_at, 'YYYY-MM-DD'),
										retention._html(x.released_by),
										coalesce(': ' || retention._html(x.release_note), '')) END), '' ORDER BY x.id)
	  INTO rows
	  FROM (SELECT hh.id, hh.relid, hh.reason, hh.reference, hh.from_ts, hh.to_ts, hh.until, hh.placed_at,
				   hh.placed_by, hh.released_at, hh.released_by, hh.release_note FROM retention.hold hh) x;
	h := h || '<h2>4. Holds register</h2>' || CASE WHEN rows IS NULL THEN '<p class="none">No hold.</p>' ELSE
		'<table><tr><th>id</th><th>table</th><th>reason (authority)</th><th>reference</th><th>calls</th><th>until</th><th>placed</th><th>release</th></tr>'
		|| rows || '</table><p>The subscribers held are in <code>retention.hold</code>, not here.</p>' END;

	-- 5. consents
	SELECT pg_catalog.string_agg(pg_catalog.format('<tr><td>%s</td><td class="n">%s</td></tr>',
			retention._html(c.state), c.consents), '')
	  INTO rows FROM retention.consent_summary c;
	h := h || '<h2>5. Marketing consents</h2><table><tr><th>state</th><th>consents</th></tr>' || coalesce(rows, '') || '</table>';

	-- 6. sweeps
	SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
			'run_id', g.run_id, 'started', g.started, 'cutoff', g.cutoff, 'tables', g.tables, 'status', g.status,
			'anonymized', g.anonymized, 'deleted', g.deleted, 'held', g.held, 'skipped', g.skipped,
			'lag', g.lag)), '[]')
	  INTO runs
	  FROM (SELECT g0.*, g0.cutoff - pg_catalog.lag(g0.cutoff) OVER (ORDER BY g0.run_id) AS lag FROM
		   (SELECT l.run_id, pg_catalog.min(l.started_at) AS started, pg_catalog.max(l.cutoff) AS cutoff,
				   pg_catalog.count(*) AS tables,
				   pg_catalog.string_agg(DISTINCT l.status, ', ') AS status,
				   pg_catalog.sum(l.rows_anonymized) AS anonymized, pg_catalog.sum(l.rows_deleted) AS deleted,
				   pg_catalog.sum(l.rows_held) AS held, pg_catalog.sum(l.rows_skipped) AS skipped
			  FROM retention.sweep_log l GROUP BY l.run_id) g0) g;
	SELECT pg_catalog.string_agg(pg_catalog.format(
			'<tr><td class="n">%s</td><td>%s</td><td class="n">%s</td><td>%s</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s</td><td>%s</td></tr>',
			x.run_id, pg_catalog.to_char(x.started, 'YYYY-MM-DD HH24:MI'), x.tables, retention._html(x.status),
			x.anonymized, x.deleted, x.held, x.skipped, coalesce(retention._html(pg_catalog.justify_hours(pg_catalog.date_trunc('second', x.lag))), 'first run')), ''
			ORDER BY x.run_id DESC)
	  INTO rows FROM (SELECT * FROM pg_catalog.jsonb_to_recordset(runs) AS y(run_id bigint, started timestamptz, cutoff timestamptz, tables bigint, status text, anonymized bigint, deleted bigint, held bigint, skipped bigint, lag interval) ORDER BY run_id DESC LIMIT 60) x;
	SELECT pg_catalog.array_agg('run ' || x.run_id || ' ' || pg_catalog.to_char(x.started, 'MM-DD HH24:MI') ORDER BY x.run_id),
		   pg_catalog.array_agg((x.anonymized + x.deleted)::float8 ORDER BY x.run_id),
		   pg_catalog.array_agg(NULL::float8 ORDER BY x.run_id)
	  INTO labels, vals, marks FROM (SELECT * FROM pg_catalog.jsonb_to_recordset(runs) AS y(run_id bigint, started timestamptz, cutoff timestamptz, tables bigint, status text, anonymized bigint, deleted bigint, held bigint, skipped bigint, lag interval) ORDER BY run_id DESC LIMIT 30) x;
	h := h || '<h2>6. Sweeps</h2>' || CASE WHEN rows IS NULL THEN '<p class="none">No sweep yet.</p>' ELSE
		retention._svg_bars('Rows erased or anonymized per sweep run (last 30)', labels, vals, marks, 'rows', '')
		|| (SELECT retention._svg_bars('Longest wait past a deadline: time since the previous run''s cutoff (hours)',
				pg_catalog.array_agg('run ' || x.run_id ORDER BY x.run_id),
				pg_catalog.array_agg(pg_catalog.date_part('epoch', x.lag) / 3600 ORDER BY x.run_id),
				pg_catalog.array_agg(NULL::float8 ORDER BY x.run_id), 'h', '')
			  FROM (SELECT * FROM pg_catalog.jsonb_to_recordset(runs) AS y(run_id bigint, started timestamptz, cutoff timestamptz, tables bigint, status text, anonymized bigint, deleted bigint, held bigint, skipped bigint, lag interval) WHERE y.lag IS NOT NULL ORDER BY run_id DESC LIMIT 30) x)
		|| '<table><tr><th>run</th><th>started (UTC)</th><th>tables</th><th>status</th><th>anonymized</th><th>deleted</th><th>held back</th><th>skipped (locked)</th><th>wait past deadline, at most</th></tr>'
		|| rows || '</table>' END;
	SELECT pg_catalog.string_agg(pg_catalog.format('<tr><td>%s</td><td>%s</td><td class="n">%s</td><td class="n">%s</td></tr>',
			retention._html(w.relid), retention._html(w.action), w.n, w.total), '' ORDER BY w.relid::text, w.action)
	  INTO rows FROM (SELECT wl.relid, wl.action, pg_catalog.count(*) AS n, pg_catalog.sum(wl.rows) AS total
						FROM retention.write_log wl GROUP BY wl.relid, wl.action) w;
	IF rows IS NOT NULL THEN
		h := h || '<p>Rows fixed as they were written (<code>write_log</code>):</p><table><tr><th>table</th><th>action</th><th>statements</th><th>rows</th></tr>'
			   || rows || '</table>';
	END IF;

	-- 7. copies and gaps
	SELECT pg_catalog.string_agg(pg_catalog.format('<tr><td>%s</td><td>%s</td><td>%s</td><td class="n">%s</td><td>%s</td></tr>',
			coalesce(retention._html(d."table"), '-'), retention._html(d.kind), coalesce(retention._html(d."column"), '-'),
			coalesce(d.rows_in_clear::text, '-'), retention._html(d.note)), '' ORDER BY d.kind, d."table"::text, d."column")
	  INTO rows FROM pg_catalog.jsonb_to_recordset(rep) AS d("table" text, "column" text, kind text, type text, purposes text[], "window" interval, method text, rows_in_clear bigint, oldest_clear timestamptz, overdue_rows bigint, held_rows bigint, last_sweep timestamptz, note text) WHERE d.kind NOT IN ('tagged', 'untagged');
	h := h || '<h2>7. Copies found, and what keeps retention from applying</h2>' ||
		CASE WHEN rows IS NULL THEN '<p class="ok">None: no materialized view, generated column, index or other table copies a tagged column, and retention applies everywhere.</p>'
		ELSE '<table><tr><th>relation</th><th>kind</th><th>column</th><th>values in clear</th><th>note</th></tr>' || rows || '</table>' END;
	SELECT pg_catalog.string_agg(pg_catalog.format('%s.%s', retention._html(d."table"), retention._html(d."column")), ', '
								 ORDER BY d."table"::text, d."column")
	  INTO rows FROM pg_catalog.jsonb_to_recordset(rep) AS d("table" text, "column" text, kind text, type text, purposes text[], "window" interval, method text, rows_in_clear bigint, oldest_clear timestamptz, overdue_rows bigint, held_rows bigint, last_sweep timestamptz, note text) WHERE d.kind = 'untagged';
	h := h || '<p>Columns declared non-personal technical data (untagged): ' || coalesce(rows, 'none') || '.</p>';

	-- 8. the audit log
	SELECT pg_catalog.string_agg(pg_catalog.format('<tr><td>%s</td><td class="n">%s</td><td>%s</td></tr>',
			retention._html(x.action), x.n, pg_catalog.to_char(x.last, 'YYYY-MM-DD HH24:MI')), '' ORDER BY x.action)
	  INTO rows FROM (SELECT l.action, pg_catalog.count(*) AS n, pg_catalog.max(l.at) AS last
						FROM retention.audit_log l GROUP BY l.action) x;
	h := h || pg_catalog.format('<h2>8. Audit log</h2><p>Hash chain verification: <span class="%s">%s</span>, %s rows checked%s.</p>'
								'<p>Head: row <b>%s</b>, SHA-256 <code>%s</code>. Note them: a later visit finds the same row with the same hash, or the log was cut.</p>',
								CASE WHEN a.valid THEN 'ok' ELSE 'bad' END, CASE WHEN a.valid THEN 'valid' ELSE 'BROKEN' END,
								a.rows_checked,
								CASE WHEN a.valid THEN '' ELSE pg_catalog.format(', first broken row %s: %s', a.first_broken_id, retention._html(a.problem)) END,
								coalesce(a.head_id::text, 'none'), coalesce(a.head_hash, '-'))
		   || '<table><tr><th>action</th><th>rows</th><th>last</th></tr>' || coalesce(rows, '') || '</table>';
	h := h || '<p>This document''s SHA-256 is recorded in the audit log (action <code>dossier</code>) by <code>tools/dossier</code>, after this head: check a copy with <code>sha256sum</code> and <code>SELECT * FROM retention.audit_log WHERE details-&gt;&gt;''sha256'' = ''...''</code>.</p>';
	RETURN h || '</body></html>' || E'\n';
END
$$;
COMMENT ON FUNCTION retention.dossier() IS
	'The compliance dossier: a self-contained HTML document on the database''s retention now, naming no subscriber';
REVOKE ALL ON FUNCTION retention.dossier() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.dossier() TO retention_admin, retention_auditor;

-- ---------------------------------------------------------------------
-- Issue 17: protect() accepts a NOT NULL tagged column that can be erased
-- to the empty value (see retention._unerasable_not_null()); 1.0's
-- otherwise, with search_path pinned.  Issue 15: it takes the column that
-- says which communications the operator's own subscribers originated
-- (billing keeps no other, CPCE L34-1 IV ¶1 and R10-14), and the kind of
-- table: communications, anchored on their end, or subscribers and
-- contracts, anchored on the contract's end (II bis 1° and 2°).
-- ---------------------------------------------------------------------
DROP FUNCTION retention.protect(regclass, name, name, text, name);
CREATE FUNCTION retention.protect(tbl regclass, ended_at name,
								  subscriber name DEFAULT NULL,
								  on_expiry text DEFAULT 'delete',
								  billing_anchor name DEFAULT NULL,
								  originated name DEFAULT NULL,
								  table_kind text DEFAULT 'communication')
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	rel			pg_catalog.pg_class;
	a			pg_catalog.pg_attribute;
	c			record;
	ntagged		integer;
	protector	regclass;
BEGIN
	-- a table that Citus manages (section "Citus: fail closed")
	PERFORM retention._citus_refuse(tbl);
	SELECT * INTO rel FROM pg_catalog.pg_class WHERE oid = tbl;
	IF rel.relkind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '% is not a table', tbl
			USING ERRCODE = 'wrong_object_type',
				  DETAIL = 'Only plain and partitioned tables can be protected.';
	END IF;
	protector := retention._is_protected(tbl);
	IF protector = tbl THEN
		RAISE EXCEPTION 'table % is already protected', tbl
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Use retention.unprotect() first to change how it is protected.';
	ELSIF protector IS NOT NULL THEN
		RAISE EXCEPTION 'table % is already protected as a partition of %', tbl, protector
			USING ERRCODE = 'duplicate_object';
	END IF;
	IF EXISTS (SELECT 1 FROM retention.protected_table pt
				WHERE tbl IN (SELECT relid FROM pg_catalog.pg_partition_ancestors(pt.relid))) THEN
		RAISE EXCEPTION 'a partition of table % is already protected', tbl
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Unprotect the partition, then protect the partitioned table.';
	END IF;
	IF on_expiry IS NULL OR on_expiry NOT IN ('delete', 'anonymize') THEN
		RAISE EXCEPTION 'unknown on_expiry action "%"', on_expiry
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use ''delete'' to delete a row once nothing personal is left, or ''anonymize'' to keep it anonymized.';
	END IF;

	a := retention._column(tbl, ended_at, 'ended_at');
	IF a.atttypid NOT IN ('timestamptz'::regtype, 'timestamp'::regtype) THEN
		RAISE EXCEPTION 'column "%" of relation % is of type %, not a timestamp',
				ended_at, tbl, format_type(a.atttypid, a.atttypmod)
			USING ERRCODE = 'datatype_mismatch',
				  HINT = 'ended_at must be a timestamp with time zone (or without, read in retention.timezone).';
	END IF;
	IF billing_anchor IS NOT NULL THEN
		a := retention._column(tbl, billing_anchor, 'billing_anchor');
		IF a.atttypid NOT IN ('timestamptz'::regtype, 'timestamp'::regtype) THEN
			RAISE EXCEPTION 'column "%" of relation % is of type %, not a timestamp',
					billing_anchor, tbl, format_type(a.atttypid, a.atttypmod)
				USING ERRCODE = 'datatype_mismatch',
					  HINT = 'billing_anchor must be a timestamp with time zone, such as the invoice''s due date.';
		END IF;
	END IF;

	IF table_kind IS NULL OR table_kind NOT IN ('communication', 'subscriber') THEN
		RAISE EXCEPTION 'unknown table kind "%"', table_kind
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use ''communication'' for the data of communications (anchored on their end) or ''subscriber'' for subscriber and contract data (anchored on the end of the contract, the account or the prepaid service).';
	END IF;
	IF originated IS NOT NULL THEN
		IF table_kind = 'subscriber' THEN
			RAISE EXCEPTION 'a subscriber table has no originated column'
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'originated says which communications the operator''s own subscriber originated: give it for a table of communications.';
		END IF;
		a := retention._column(tbl, originated, 'originated');
		IF a.atttypid <> 'boolean'::regtype THEN
			RAISE EXCEPTION 'column "%" of relation % is of type %, not boolean',
					originated, tbl, format_type(a.atttypid, a.atttypmod)
				USING ERRCODE = 'datatype_mismatch',
					  HINT = 'For an expression, add a generated column: ALTER TABLE ... ADD COLUMN originated boolean GENERATED ALWAYS AS (direction = ''out'') STORED.';
		END IF;
	END IF;

	SELECT count(*) INTO ntagged FROM retention.tagged_columns(tbl);
	IF ntagged = 0 THEN
		RAISE EXCEPTION 'table % has no purpose-tagged column', tbl
			USING ERRCODE = 'invalid_table_definition',
				  HINT = 'Declare its personal data with retention.msisdn, imsi, imei, cell or ident, e.g. ALTER TABLE ... ALTER COLUMN caller TYPE retention.msisdn(billing).';
	END IF;
	IF subscriber IS NOT NULL THEN
		a := retention._column(tbl, subscriber, 'subscriber');
		IF NOT EXISTS (SELECT 1 FROM retention.tagged_columns(tbl) t WHERE t.attname = subscriber) THEN
			RAISE EXCEPTION 'column "%" of relation % is not purpose-tagged', subscriber, tbl
				USING ERRCODE = 'datatype_mismatch',
					  HINT = 'The subscriber column holds personal data: give it a type such as retention.msisdn(billing).';
		END IF;
	END IF;
	-- an erased value is NULL, or the empty value in a NOT NULL column
	-- whose default it is and that no check constraint names
	FOR c IN SELECT * FROM retention._unerasable_not_null(tbl) LOOP
		RAISE EXCEPTION 'purpose-tagged column "%" of relation % is NOT NULL and cannot be erased', c.attname, c.rel
			USING ERRCODE = 'invalid_table_definition',
				  DETAIL = format('An erased value is NULL, or the empty value in a NOT NULL column whose default is the empty value and that no check constraint names; %s.', c.why),
				  HINT = CASE WHEN c.why LIKE 'its default%'
							  THEN format('Make the empty value its default: ALTER TABLE %s ALTER COLUMN %I SET DEFAULT ''''; or drop the constraint: ALTER TABLE %s ALTER COLUMN %I DROP NOT NULL.', c.rel, c.attname, c.rel, c.attname)
							  ELSE format('Drop the check constraint, or the NOT NULL one: ALTER TABLE %s ALTER COLUMN %I DROP NOT NULL.', c.rel, c.attname) END;
	END LOOP;

	INSERT INTO retention.protected_table (relid, ended_at, subscriber, on_expiry, billing_anchor, columns,
										   originated, table_kind)
		VALUES (tbl, protect.ended_at, protect.subscriber, protect.on_expiry, protect.billing_anchor,
				retention._tags(tbl), protect.originated, protect.table_kind);
	PERFORM retention._create_triggers(tbl);
	PERFORM retention._audit('protect', tbl::text,
							 jsonb_build_object('ended_at', ended_at, 'subscriber', subscriber,
												'on_expiry', on_expiry, 'billing_anchor', billing_anchor,
												'columns', retention._tags(tbl))
							 || CASE WHEN originated IS NULL THEN '{}'::jsonb
									 ELSE jsonb_build_object('originated', originated) END
							 || CASE WHEN table_kind = 'communication' THEN '{}'::jsonb
									 ELSE jsonb_build_object('table_kind', table_kind) END);
	-- a tagged purpose the regime in force has no rule for keeps nothing
	FOR c IN SELECT t.attname, t.purposes FROM retention.tagged_columns(tbl) t
			  WHERE t.purposes <> '{}' AND retention._column_rules(tbl, t.attname) = '{}' LOOP
		RAISE WARNING 'column "%" of relation % is kept for no purpose under regime %',
				c.attname, tbl, retention.regime_in_force()
			USING DETAIL = format('No rule of %s covers %s for a %s table of this type: its values are erased when the %s ends.',
								  retention.regime_in_force(), array_to_string(c.purposes, ', '), table_kind,
								  CASE WHEN table_kind = 'subscriber' THEN 'contract' ELSE 'communication' END),
				  HINT = 'See retention.policy for the purposes and the types each covers.';
	END LOOP;
	-- the index the sweep needs to cost what is due, not what is kept (issue 16)
	FOR c IN SELECT d AS why FROM retention._sweep_drive_problems(tbl) d LOOP
		RAISE NOTICE 'the sweep of % will read more than what is due', tbl USING DETAIL = c.why;
	END LOOP;
END
$$;
COMMENT ON FUNCTION retention.protect(regclass, name, name, text, name, name, text) IS
	'Put a table under retention: expiry triggers now, sweeps later (audited)';

REVOKE ALL ON FUNCTION retention.protect(regclass, name, name, text, name, name, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.protect(regclass, name, name, text, name, name, text) TO retention_admin;

-- ---------------------------------------------------------------------
-- Issue 17: IP addresses as idents.  FreeRADIUS writes its framed
-- addresses as inet (NULLIF(...)::inet); a column of type inet or cidr
-- becomes an ident by ALTER COLUMN ... TYPE alone, and its writer's
-- statements keep working.  (generalize keeps an IP address's /24 or /48
-- prefix: src/types.c, src/anonymize.c.)
-- ---------------------------------------------------------------------
CREATE CAST (inet AS retention.ident) WITH INOUT AS ASSIGNMENT;
CREATE CAST (cidr AS retention.ident) WITH INOUT AS ASSIGNMENT;

-- ---------------------------------------------------------------------
-- Citus: fail closed (issue 18, item 1).  Retention does not enforce
-- Citus tables yet: their rows are in shards, on the workers or the
-- coordinator, that its sweep and report() do not reach (its triggers,
-- which Citus copies there, refuse writes: src/citus.c, src/trigger.c).
-- protect() refuses a distributed, reference or Citus local table (or a
-- shard, or a table whose partition is one), and any table under a Citus
-- version retention does not know; a table that became one after it was
-- protected (create_distributed_table() and the like are function calls,
-- which no event trigger sees) shows in report() as 'not enforced', makes
-- verify() raise, and its sweep fails with the reason.  So does, on any
-- node, a Citus table holding purpose-tagged columns.  Citus need not be
-- installed: src/citus.c looks its catalogs up at run time, and nothing
-- here names them.
-- ---------------------------------------------------------------------
CREATE FUNCTION retention._citus_present()
RETURNS boolean
AS 'MODULE_PATHNAME', 'retention_citus_present'
LANGUAGE C STABLE;
COMMENT ON FUNCTION retention._citus_present() IS
	'Is Citus''s metadata (pg_dist_partition) in this database?';

-- NULL, or why retention does not enforce the table: Citus manages it or
-- one of its partitions, or it is a shard
CREATE FUNCTION retention._citus_problem(tbl regclass)
RETURNS text
AS 'MODULE_PATHNAME', 'retention_citus_problem'
LANGUAGE C STABLE STRICT;

-- NULL, or the installed Citus, of a version retention does not know
CREATE FUNCTION retention._citus_version_problem()
RETURNS text
AS 'MODULE_PATHNAME', 'retention_citus_version_problem'
LANGUAGE C STABLE;

-- protect()'s check: raises feature_not_supported
CREATE FUNCTION retention._citus_refuse(tbl regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'retention_citus_refuse'
LANGUAGE C STRICT;

-- What report() and verify() say of Citus on this node: an unknown
-- version; every protected table that Citus manages; every Citus table
-- with purpose-tagged columns that is not protected here (on a worker,
-- whose catalog lists none of the coordinator's protected tables, that is
-- each of them).  Partitions are the business of their table.
CREATE FUNCTION retention._citus_problems(OUT rel regclass, OUT problem text)
RETURNS SETOF record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
BEGIN
	IF NOT retention._citus_present() THEN
		RETURN;
	END IF;
	rel := NULL;
	problem := retention._citus_version_problem();
	IF problem IS NOT NULL THEN
		RETURN NEXT;
	END IF;
	RETURN QUERY
		SELECT p.relid, c.problem
		  FROM retention.protected_table p
		 CROSS JOIN LATERAL retention._citus_problem(p.relid) c(problem)
		 WHERE c.problem IS NOT NULL
		 ORDER BY p.relid::text;
	-- pg_dist_partition exists (checked above): named in dynamic SQL only
	RETURN QUERY EXECUTE
		'SELECT d.logicalrelid, retention._citus_problem(d.logicalrelid)
		   FROM pg_catalog.pg_dist_partition d
		   JOIN pg_catalog.pg_class c ON c.oid = d.logicalrelid
		  WHERE NOT c.relispartition
			AND NOT EXISTS (SELECT 1 FROM retention.protected_table p WHERE p.relid = d.logicalrelid)
			AND EXISTS (SELECT 1 FROM retention.tagged_columns(d.logicalrelid))
		  ORDER BY d.logicalrelid::text';
END
$$;
COMMENT ON FUNCTION retention._citus_problems() IS
	'The Citus tables on this node that retention does not enforce (all of them, for now), and an unknown Citus version';

REVOKE ALL ON FUNCTION retention._citus_problem(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION retention._citus_version_problem() FROM PUBLIC;
REVOKE ALL ON FUNCTION retention._citus_refuse(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION retention._citus_problems() FROM PUBLIC;

/*------------------------------------------------------------------------
 * Quick freeze (issue 15, item 5)
 *
 * CPCE L34-1 III bis lets an authority with legal access to the data order
 * an operator to preserve what it already holds (injonction de conservation
 * rapide).  The article sets no maximum duration: the order sets its term.
 * A quick_freeze hold records the order's reference, the authority that
 * issued it and that term (until, required), and its kind: a national
 * order, or a European Preservation Order (Regulation (EU) 2023/1543,
 * art. 11(1)): 60 days, which the issuing authority may extend once by 30
 * days, then as long as a production it confirms needs.
 * retention.extend_hold() renews a hold; retention.request_production()
 * records the production confirmed for an EU order, which then lasts until
 * released (or until the date given).  A hold only ever extends: the
 * trigger below refuses an earlier until, an open-ended hold given an end,
 * and a change of what or whom it holds, on every write (retention's
 * functions, a superuser's UPDATE, a restore).  Every step is audited and
 * recorded in retention.hold_renewal.  Billing disputes and judicial
 * requests have no term of their own in today's text either: the
 * dispute's end or the order's.  Holds of 1.0 keep working: a quick freeze
 * becomes a national order, its authority unknown.
 *------------------------------------------------------------------------
 */

ALTER EVENT TRIGGER retention_exposures_before_alter DISABLE;
ALTER EVENT TRIGGER retention_exposures_after_alter DISABLE;
ALTER TABLE retention.hold
	ADD COLUMN authority text,
	ADD COLUMN order_kind text,
	ADD COLUMN extensions integer NOT NULL DEFAULT 0,
	ADD COLUMN production_requested_at timestamptz,
	ADD COLUMN production_reference text;
UPDATE retention.hold SET order_kind = 'national' WHERE reason = 'quick_freeze';
ALTER TABLE retention.hold
	ADD CONSTRAINT hold_order_kind
		CHECK (CASE WHEN reason = 'quick_freeze' THEN order_kind IN ('national', 'eu_preservation')
					ELSE order_kind IS NULL END),
	ADD CONSTRAINT hold_extensions CHECK (extensions >= 0),
	ADD CONSTRAINT hold_production
		CHECK ((production_requested_at IS NULL) = (production_reference IS NULL)
			   AND (production_requested_at IS NULL OR order_kind = 'eu_preservation'));
ALTER EVENT TRIGGER retention_exposures_before_alter ENABLE ALWAYS;
ALTER EVENT TRIGGER retention_exposures_after_alter ENABLE ALWAYS;
COMMENT ON COLUMN retention.hold.authority IS
	'The authority that issued the order (required for a quick_freeze placed since 1.1)';
COMMENT ON COLUMN retention.hold.order_kind IS
	'For a quick_freeze: national (CPCE L34-1 III bis, the order sets its term) or eu_preservation (Regulation (EU) 2023/1543 art. 11: 60 days, extendable once by 30)';
COMMENT ON COLUMN retention.hold.extensions IS
	'How many times retention.extend_hold() renewed the hold';
COMMENT ON COLUMN retention.hold.production_requested_at IS
	'For an EU preservation order: when the issuing authority''s confirmation of a production order was recorded';

-- the renewals of each hold, with the reference of the order that renewed
-- it: dumped
CREATE TABLE retention.hold_renewal (
	id				bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	hold_id			bigint NOT NULL REFERENCES retention.hold ON DELETE CASCADE,
	kind			text NOT NULL CHECK (kind IN ('extension', 'production')),
	reference		text NOT NULL,
	previous_until	timestamptz,
	until			timestamptz,
	renewed_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	renewed_by		name NOT NULL DEFAULT session_user
);
CREATE INDEX hold_renewal_hold ON retention.hold_renewal (hold_id);
SELECT pg_catalog.pg_extension_config_dump('retention.hold_renewal', '');
SELECT pg_catalog.pg_extension_config_dump('retention.hold_renewal_id_seq', '');
COMMENT ON TABLE retention.hold_renewal IS
	'Every extension of a hold and every production confirmed for an EU preservation order, with its reference';
REVOKE ALL ON retention.hold_renewal FROM PUBLIC;
GRANT SELECT ON retention.hold_renewal TO retention_admin, retention_auditor;
-- the database's owner dumps it, as the other configuration tables
DO $grant$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pg_database_owner') THEN
		GRANT SELECT ON retention.hold_renewal TO pg_database_owner;
		GRANT SELECT ON SEQUENCE retention.hold_renewal_id_seq TO pg_database_owner;
	END IF;
END
$grant$;
GRANT SELECT (authority, order_kind, extensions, production_requested_at, production_reference)
	ON retention.hold TO retention_auditor;

-- t + n days, in UTC or in the session's zone, whichever is later (the
-- two differ by an hour across a daylight-saving change): a term given as
-- now() + interval '60 days' fits in every zone
CREATE FUNCTION retention._days_after(t timestamptz, n integer)
RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT greatest(((t AT TIME ZONE 'UTC') + n * interval '1 day') AT TIME ZONE 'UTC',
					t + n * interval '1 day')
$$;

-- A hold's term, on every write of retention.hold: a finite end; only
-- ever later; what it holds unchanged; an EU preservation order within
-- its 60 days (90 once extended) until a production is confirmed.
CREATE OR REPLACE FUNCTION retention._hold_term()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	bound	timestamptz;
BEGIN
	IF TG_OP = 'INSERT' AND NEW.reason = 'quick_freeze' AND NEW.order_kind IS NULL THEN
		NEW.order_kind := 'national';
	END IF;
	IF NEW.until IS NOT NULL AND NOT pg_catalog.isfinite(NEW.until) THEN
		RAISE EXCEPTION 'a hold must end at a finite time'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = pg_catalog.format('until is %s.', NEW.until),
				  HINT = 'Give the date the order ends; a billing dispute without until lasts until released.';
	END IF;
	IF TG_OP = 'UPDATE' THEN
		IF (NEW.id, NEW.relid, NEW.subscriber, NEW.from_ts, NEW.to_ts, NEW.reason, NEW.order_kind,
			NEW.reference, NEW.authority, NEW.placed_at, NEW.placed_by)
		   IS DISTINCT FROM
		   (OLD.id, OLD.relid, OLD.subscriber, OLD.from_ts, OLD.to_ts, OLD.reason, OLD.order_kind,
			OLD.reference, OLD.authority, OLD.placed_at, OLD.placed_by) THEN
			RAISE EXCEPTION 'hold % cannot be changed', OLD.id
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  DETAIL = 'What a hold keeps, for whom, by which order and since when is fixed when it is placed.',
					  HINT = 'Extend it with retention.extend_hold(), or release it and place a new hold.';
		END IF;
		IF (OLD.until IS NULL AND NEW.until IS NOT NULL) OR NEW.until < OLD.until THEN
			RAISE EXCEPTION 'a hold can only be extended'
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('Hold %s ends %s; until %s would shorten it.', OLD.id,
												 coalesce('at ' || OLD.until::text, 'when released'), NEW.until),
					  HINT = 'Release it with retention.release() when the order is lifted.';
		END IF;
		IF NEW.extensions < OLD.extensions
		   OR (OLD.production_requested_at IS NOT NULL
			   AND (NEW.production_requested_at, NEW.production_reference)
				   IS DISTINCT FROM (OLD.production_requested_at, OLD.production_reference)) THEN
			RAISE EXCEPTION 'hold % cannot be changed', OLD.id
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  DETAIL = 'Its extensions and the production confirmed for it are recorded for good.';
		END IF;
	END IF;
	IF NEW.order_kind = 'eu_preservation' AND NEW.production_requested_at IS NULL THEN
		IF NEW.extensions > 1 THEN
			RAISE EXCEPTION 'an EU preservation order can be extended only once'
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  DETAIL = pg_catalog.format('Hold %s is recorded as extended %s times.', NEW.id, NEW.extensions),
					  HINT = 'Regulation (EU) 2023/1543 art. 11(1): the order lasts 60 days, extendable once by 30; once the issuing authority confirms a production order, record it with retention.request_production().';
		END IF;
		bound := retention._days_after(NEW.placed_at, CASE WHEN NEW.extensions = 0 THEN 60 ELSE 90 END);
		IF NEW.until IS NULL OR NEW.until > bound THEN
			RAISE EXCEPTION '%', CASE WHEN NEW.extensions = 0
									  THEN 'an EU preservation order lasts at most 60 days'
									  ELSE 'an extended EU preservation order lasts at most 90 days' END
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('until is %s; the order was placed at %s.',
												 coalesce(NEW.until::text, 'null'), NEW.placed_at),
					  HINT = 'Regulation (EU) 2023/1543 art. 11(1): the order lasts 60 days, extendable once by 30 (retention.extend_hold()), then as long as a production the issuing authority confirms needs (retention.request_production()).';
		END IF;
	END IF;
	RETURN NEW;
END
$$;

-- holds an upgraded 1.0 database has with an infinite end: infinity is
-- "until released", which NULL says; -infinity ended when placed
DO $$
DECLARE
	r	record;
BEGIN
	FOR r IN UPDATE retention.hold h
				SET until = CASE WHEN h.until > h.placed_at THEN NULL ELSE h.placed_at END
			  WHERE NOT pg_catalog.isfinite(h.until)
			 RETURNING h.id, h.relid, h.until LOOP
		PERFORM retention._audit('bound_hold', r.relid::text,
								 pg_catalog.jsonb_build_object('hold', r.id, 'until', r.until));
	END LOOP;
END
$$;

CREATE TRIGGER hold_term
	BEFORE INSERT OR UPDATE ON retention.hold
	FOR EACH ROW EXECUTE FUNCTION retention._hold_term();

DROP FUNCTION retention.hold(regclass, text, timestamptz, timestamptz, text, text, timestamptz);
CREATE FUNCTION retention.hold(tbl regclass, subscriber text, from_ts timestamptz,
							   to_ts timestamptz, reason text, reference text,
							   until timestamptz DEFAULT NULL, authority text DEFAULT NULL,
							   order_kind text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	v		text;
	id		bigint;
	kind	text := order_kind;
BEGIN
	IF reason IS NULL OR reason NOT IN ('billing_dispute', 'judicial_request', 'quick_freeze') THEN
		RAISE EXCEPTION 'unknown hold reason "%"', reason
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Valid reasons are billing_dispute (holds what is kept for billing), judicial_request and quick_freeze (hold the whole row).';
	END IF;
	IF reason = 'quick_freeze' THEN
		kind := coalesce(kind, 'national');
		IF kind NOT IN ('national', 'eu_preservation') THEN
			RAISE EXCEPTION 'unknown order kind "%"', kind
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Valid kinds are national (a quick freeze ordered under CPCE L34-1 III bis, for the term the order sets) and eu_preservation (a European Preservation Order, Regulation (EU) 2023/1543 art. 11: 60 days, extendable once by 30).';
		END IF;
	ELSIF kind IS NOT NULL THEN
		RAISE EXCEPTION 'only a quick_freeze hold has an order kind'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = pg_catalog.format('reason is %s, order_kind %s.', reason, kind);
	END IF;
	IF reason <> 'billing_dispute' AND until IS NULL THEN
		RAISE EXCEPTION 'a % hold needs the date its order ends', reason
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = CASE WHEN kind = 'eu_preservation'
							  THEN 'Give until => the end of the order: at most 60 days away (Regulation (EU) 2023/1543 art. 11(1)).'
							  WHEN kind = 'national'
							  THEN 'Give until => the end the order sets (CPCE L34-1 III bis sets no maximum: the order does).'
							  ELSE 'Give until => the end the order sets.' END;
	END IF;
	IF until IS NOT NULL AND until <= now() THEN
		RAISE EXCEPTION 'a hold must end in the future'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('until is %s.', until);
	END IF;
	IF from_ts IS NULL OR to_ts IS NULL OR from_ts > to_ts THEN
		RAISE EXCEPTION 'invalid hold period'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'from_ts and to_ts are required, and from_ts must not be after to_ts.';
	END IF;
	IF reference IS NULL OR btrim(reference) = '' THEN
		RAISE EXCEPTION 'a hold needs a reference'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Give the invoice, case or order number that justifies it.';
	END IF;
	IF btrim(authority) = '' THEN
		authority := NULL;
	END IF;
	IF reason = 'quick_freeze' AND authority IS NULL THEN
		RAISE EXCEPTION 'a quick_freeze hold needs the authority that ordered it'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Give authority => the authority that issued the order (CPCE L34-1 III bis: one the law gives access to the data).';
	END IF;
	v := retention._subscriber_value(tbl, subscriber);
	-- wait for the sweep batch in flight on this table, and keep new ones
	-- out until the hold is committed: a lock no other role can take (locks.c)
	PERFORM retention._lock(tbl, 'hold');
	-- a day given as a date covers the whole day
	IF to_ts = date_trunc('day', to_ts) THEN
		to_ts := to_ts + interval '1 day' - interval '1 microsecond';
	END IF;
	-- the term of an EU order is checked by the trigger (retention._hold_term)
	INSERT INTO retention.hold AS h (relid, subscriber, from_ts, to_ts, reason, reference, until,
									 authority, order_kind)
		VALUES (tbl, v, from_ts, to_ts, reason, reference, until, authority, kind)
		RETURNING h.id INTO id;
	PERFORM retention._audit('hold', tbl::text,
							 jsonb_build_object('hold', id, 'reason', reason, 'reference', reference,
												'from', from_ts, 'to', to_ts, 'until', until)
							 || jsonb_strip_nulls(jsonb_build_object('authority', authority,
																	 'order_kind', kind)));
	RETURN id;
END
$$;
COMMENT ON FUNCTION retention.hold(regclass, text, timestamptz, timestamptz, text, text, timestamptz, text, text) IS
	'Keep a subscriber''s rows from erasure for a billing dispute, a judicial request or a quick freeze ordered by an authority (audited)';
REVOKE ALL ON FUNCTION retention.hold(regclass, text, timestamptz, timestamptz, text, text, timestamptz, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.hold(regclass, text, timestamptz, timestamptz, text, text, timestamptz, text, text) TO retention_admin;

-- the hold to renew, locked, or an error saying why it cannot be
CREATE FUNCTION retention._hold_to_renew(hold_id bigint)
RETURNS retention.hold
LANGUAGE plpgsql
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	h		retention.hold;
BEGIN
	SELECT * INTO h FROM retention.hold WHERE id = hold_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'hold % does not exist', hold_id
			USING ERRCODE = 'undefined_object';
	END IF;
	IF h.released_at IS NOT NULL THEN
		RAISE EXCEPTION 'hold % was already released', hold_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('%s released it, with note: %s', h.released_by, coalesce(h.release_note, '(none)')),
				  HINT = 'Place a new hold.';
	END IF;
	IF h.until IS NOT NULL AND h.until <= now() THEN
		RAISE EXCEPTION 'hold % has ended', hold_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('It ended at %s; what was due since then may be gone.', h.until),
				  HINT = 'Place a new hold.';
	END IF;
	RETURN h;
END
$$;
REVOKE ALL ON FUNCTION retention._hold_to_renew(bigint) FROM PUBLIC;

CREATE FUNCTION retention.extend_hold(hold_id bigint, until timestamptz, reference text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	h		retention.hold := retention._hold_to_renew(hold_id);
BEGIN
	IF reference IS NULL OR btrim(reference) = '' THEN
		RAISE EXCEPTION 'a hold extension needs a reference'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Give the number of the order or decision that renews the hold.';
	END IF;
	IF until IS NULL THEN
		RAISE EXCEPTION 'a hold extension needs the date it ends'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF h.until IS NULL THEN
		RAISE EXCEPTION 'hold % has no end to extend', hold_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'It lasts until released.';
	END IF;
	IF until <= h.until THEN
		RAISE EXCEPTION 'a hold can only be extended'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Hold %s ends at %s; until %s would not extend it.', hold_id, h.until, until),
				  HINT = 'Release it with retention.release() when the order is lifted.';
	END IF;
	IF h.order_kind = 'eu_preservation' AND h.production_requested_at IS NULL THEN
		IF h.extensions > 0 THEN
			RAISE EXCEPTION 'an EU preservation order can be extended only once'
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  DETAIL = format('Hold %s was already extended to %s.', hold_id, h.until),
					  HINT = 'Regulation (EU) 2023/1543 art. 11(1): the order lasts 60 days, extendable once by 30; once the issuing authority confirms a production order, record it with retention.request_production().';
		END IF;
		IF until > retention._days_after(h.until, 30) THEN
			RAISE EXCEPTION 'an EU preservation order can be extended by at most 30 days'
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = format('Hold %s ends at %s; until is %s.', hold_id, h.until, until),
					  HINT = 'Regulation (EU) 2023/1543 art. 11(1): the issuing authority may extend the preservation once, by 30 days.';
		END IF;
	END IF;
	-- a sweep batch in flight on the table finishes first
	PERFORM retention._lock(h.relid, 'hold');
	UPDATE retention.hold SET until = extend_hold.until, extensions = extensions + 1 WHERE id = hold_id;
	INSERT INTO retention.hold_renewal (hold_id, kind, reference, previous_until, until)
		VALUES (hold_id, 'extension', reference, h.until, until);
	PERFORM retention._audit('extend_hold', h.relid::text,
							 jsonb_build_object('hold', hold_id, 'reference', reference,
												'previous_until', h.until, 'until', until));
END
$$;
COMMENT ON FUNCTION retention.extend_hold(bigint, timestamptz, text) IS
	'Renew a hold to a later end, recording the reference of the renewing order (audited)';
REVOKE ALL ON FUNCTION retention.extend_hold(bigint, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.extend_hold(bigint, timestamptz, text) TO retention_admin;

CREATE FUNCTION retention.request_production(hold_id bigint, reference text,
											 until timestamptz DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	h		retention.hold := retention._hold_to_renew(hold_id);
BEGIN
	IF h.order_kind IS DISTINCT FROM 'eu_preservation' THEN
		RAISE EXCEPTION 'hold % is not an EU preservation order', hold_id
			USING ERRCODE = 'wrong_object_type',
				  HINT = 'Only an EU preservation order waits for a production order; renew other holds with retention.extend_hold().';
	END IF;
	IF h.production_requested_at IS NOT NULL THEN
		RAISE EXCEPTION 'production was already requested for hold %', hold_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('Its reference is %s.', h.production_reference);
	END IF;
	IF reference IS NULL OR btrim(reference) = '' THEN
		RAISE EXCEPTION 'a production request needs a reference'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Give the reference of the production order the issuing authority confirmed.';
	END IF;
	IF until IS NOT NULL AND until < h.until THEN
		RAISE EXCEPTION 'a hold can only be extended'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Hold %s ends at %s; until %s would shorten it.', hold_id, h.until, until),
				  HINT = 'Give no until: the hold then lasts until released.';
	END IF;
	PERFORM retention._lock(h.relid, 'hold');
	UPDATE retention.hold
	   SET production_requested_at = now(), production_reference = request_production.reference,
		   until = request_production.until
	 WHERE id = hold_id;
	INSERT INTO retention.hold_renewal (hold_id, kind, reference, previous_until, until)
		VALUES (hold_id, 'production', reference, h.until, until);
	PERFORM retention._audit('request_production', h.relid::text,
							 jsonb_build_object('hold', hold_id, 'reference', reference,
												'previous_until', h.until, 'until', until));
END
$$;
COMMENT ON FUNCTION retention.request_production(bigint, text, timestamptz) IS
	'Record that the issuing authority of an EU preservation order confirmed a production order: the hold then lasts until released, or until the date given (audited)';
REVOKE ALL ON FUNCTION retention.request_production(bigint, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.request_production(bigint, text, timestamptz) TO retention_admin;

-- marketing consent: the citations of today's text (IV ¶2; the contract's
-- end is retention's own cap, not the article's)
CREATE OR REPLACE FUNCTION retention.grant_consent(subscriber text, valid_until timestamptz,
												   contract_end timestamptz)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	v		text := retention._consent_subscriber(subscriber);
BEGIN
	IF subscriber IS NULL THEN
		RAISE EXCEPTION 'subscriber must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF valid_until IS NULL OR NOT isfinite(valid_until) THEN
		RAISE EXCEPTION 'a marketing consent needs a fixed end'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'CPCE L34-1 IV ¶2 allows marketing use only with express consent "pour une durée déterminée".';
	END IF;
	IF contract_end IS NULL OR valid_until > contract_end THEN
		RAISE EXCEPTION 'a marketing consent cannot outlast the contract'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('valid_until is %s, the contract ends %s.', valid_until, contract_end),
				  HINT = 'Retention ends every marketing consent with the contract; within it, CPCE L34-1 IV ¶2 allows only the period the service needs.';
	END IF;
	IF valid_until <= now() THEN
		RAISE EXCEPTION 'a marketing consent must end in the future'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('valid_until is %s.', valid_until);
	END IF;
	INSERT INTO retention.consent AS c (subscriber, valid_until, contract_end)
		VALUES (v, valid_until, contract_end)
		ON CONFLICT ON CONSTRAINT consent_pkey DO UPDATE
		SET valid_until = excluded.valid_until, contract_end = excluded.contract_end,
			granted_at = now(), granted_by = session_user, withdrawn_at = NULL;
	PERFORM retention._audit('grant_consent', NULL,
							 jsonb_build_object('valid_until', valid_until, 'contract_end', contract_end));
END
$$;

/*------------------------------------------------------------------------
 * Separation (issue 15, item 8)
 *
 * CJEU C-470/21 (La Quadrature du Net II, 30 April 2024): the general
 * retention of the data that identify the source of a connection (CPCE
 * L34-1 II bis 3°, R10-13 IV: IP address and port, user identifier,
 * terminal identifier, calling number) is lawful only with "an effective
 * and strict separation" from the other categories of data, so that
 * combining them is impossible.  report() flags each protected table that
 * keeps connection-source data in the same rows as other traffic data,
 * and each purpose-bound view that shows both; expose() refuses to build
 * such a view.
 *
 * A column is connection-source data when its rules (under the regime in
 * force: retention._column_rules) include connection; it is other traffic
 * data when they include national_security, billing, network_security,
 * marketing or location and not connection (the calling number kept for
 * billing too is still the calling number).  Untagged columns do not
 * count: the operator declares them non-personal technical data (R6), and
 * the date and time they carry (ended_at first of all) belong to the
 * connection record itself, which II bis 3° keeps "à compter de la
 * connexion" -- an IP address identifies no one without its time.  A view
 * is judged by the rules its purpose brings out of each column it shows:
 * a billing view shows the calling number as billing data (R10-14 I keeps
 * it for billing along with the rest), a law_enforcement view shows it as
 * connection data, next to a cell kept for national security.
 *------------------------------------------------------------------------
 */

-- (retention._column_rules(), in "Legal regimes" above, says which rules
-- of the regime in force govern a column)

-- of a column's rules, those a view for purpose shows it for: a view for
-- connection or national_security (the data kept to fight serious crime
-- and threats to national security, which C-470/21 is about) shows each
-- column as all it is, any other view as that purpose's data only (a
-- billing view shows the calling number as billing data, R10-14 I)
CREATE FUNCTION retention._exposed_rules(rules text[], purpose text)
RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	SELECT pg_catalog.array_agg(r.r ORDER BY r.r)
	  FROM pg_catalog.unnest(rules) r(r)
	 WHERE r.r = purpose OR purpose IN ('connection', 'national_security')
$$;

-- the columns of tbl (of its view for purpose, when one is given) that
-- hold connection-source data, and those that hold other traffic data
-- with their rules; either is NULL when there is none
CREATE FUNCTION retention._separation(tbl regclass, purpose text DEFAULT NULL,
	OUT connection text[], OUT other text[])
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
	WITH c AS (
		SELECT a.attnum, t.attname,
			   CASE WHEN purpose IS NULL THEN retention._column_rules(tbl, t.attname)
					ELSE retention._exposed_rules(retention._column_rules(tbl, t.attname), purpose) END AS rules
		  FROM retention.tagged_columns(tbl) t
		  JOIN pg_catalog.pg_attribute a ON a.attrelid = tbl AND a.attname = t.attname
		 WHERE purpose IS NULL OR purpose = ANY (retention._column_rules(tbl, t.attname))
	), o AS (
		SELECT c.*, ARRAY(SELECT r FROM pg_catalog.unnest(c.rules) r
						   WHERE r IN ('national_security', 'billing', 'network_security', 'marketing', 'location')
						   ORDER BY r) AS others
		  FROM c
	)
	SELECT pg_catalog.array_agg(pg_catalog.quote_ident(o.attname) ORDER BY o.attnum)
			   FILTER (WHERE 'connection' = ANY (o.rules)),
		   pg_catalog.array_agg(pg_catalog.format('%I (%s)', o.attname, pg_catalog.array_to_string(o.others, ', '))
								ORDER BY o.attnum)
			   FILTER (WHERE NOT coalesce('connection' = ANY (o.rules), false) AND pg_catalog.cardinality(o.others) > 0)
	  FROM o
$$;

-- report() rows of kind 'separation': the protected tables, and the
-- exposure views, that hold connection-source data with other traffic data
CREATE FUNCTION retention._report_separation()
RETURNS TABLE ("table" regclass, "column" name, kind text, type regtype, purposes text[],
			   "window" interval, method text, rows_in_clear bigint, oldest_clear timestamptz,
			   overdue_rows bigint, held_rows bigint, last_sweep timestamptz, note text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	r		record;
BEGIN
	"column" := NULL; kind := 'separation'; type := NULL; "window" := NULL; method := NULL;
	rows_in_clear := NULL; oldest_clear := NULL; overdue_rows := NULL; held_rows := NULL;
	last_sweep := NULL;
	FOR r IN SELECT p.relid, s.connection, s.other
			   FROM retention.protected_table p, LATERAL retention._separation(p.relid) s
			  WHERE s.connection IS NOT NULL AND s.other IS NOT NULL
			  ORDER BY p.relid::text LOOP
		"table" := r.relid; purposes := NULL;
		note := format('connection-source data (CPCE L34-1 II bis 3°: %s) kept in the same rows as other traffic data (%s): CJEU C-470/21 requires an effective and strict separation of the two',
					   array_to_string(r.connection, ', '), array_to_string(r.other, ', '));
		RETURN NEXT;
	END LOOP;
	FOR r IN SELECT x.relid, x.purpose, v.v, s.connection, s.other
			   FROM (SELECT DISTINCT e.relid, e.purpose, e.view_name FROM retention.exposure e) x
			   JOIN pg_catalog.pg_class c ON c.oid = x.relid
			   JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
			  CROSS JOIN LATERAL pg_catalog.to_regclass(format('%I.%I', ns.nspname, x.view_name)) v(v)
			  CROSS JOIN LATERAL retention._separation(x.relid, x.purpose) s
			  WHERE v.v IS NOT NULL AND s.connection IS NOT NULL AND s.other IS NOT NULL
			  ORDER BY x.relid::text, x.purpose LOOP
		"table" := r.relid; purposes := ARRAY[r.purpose];
		note := format('view %s shows connection-source data (CPCE L34-1 II bis 3°: %s) with other traffic data (%s): CJEU C-470/21 requires an effective and strict separation of the two; unexpose it',
					   r.v, array_to_string(r.connection, ', '), array_to_string(r.other, ', '));
		RETURN NEXT;
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION retention._report_separation() FROM PUBLIC;

-- expose() as in 1.0, refusing a view that would combine connection-source
-- data with other traffic data
CREATE OR REPLACE FUNCTION retention.expose(tbl regclass, purpose text, to_role name)
RETURNS regclass
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	view_name	name;
	nsp			name;
	mix			record;
	citus		text;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM retention.protected_table pt WHERE pt.relid = tbl) THEN
		RAISE EXCEPTION 'table % is not protected', tbl
			USING ERRCODE = 'undefined_object',
				  HINT = 'Protect it first with retention.protect().';
	END IF;
	-- a view over a Citus table would show what no sweep clears
	citus := retention._citus_problem(tbl);
	IF citus IS NOT NULL THEN
		RAISE EXCEPTION 'cannot expose table %', tbl
			USING ERRCODE = 'feature_not_supported',
				  DETAIL = citus || '.',
				  HINT = 'Retention does not enforce Citus tables yet.  See docs/citus.md.';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM retention.purpose pu WHERE pu.purpose = expose.purpose) THEN
		PERFORM retention._unknown_purpose(purpose);
	END IF;
	-- a purpose the regime in force has no rule for keeps nothing to show
	IF NOT EXISTS (SELECT 1 FROM retention.policy pol WHERE pol.purpose = expose.purpose) THEN
		RAISE EXCEPTION 'purpose "%" has no rule of its own under regime %', purpose, retention.regime_in_force()
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = coalesce((SELECT pg_catalog.format('Its columns follow %s: expose the table for that purpose.',
															pg_catalog.string_agg(DISTINCT a.rule, ' or '))
									 FROM retention.rule_alias a
									WHERE a.regime = retention.regime_in_force() AND a.purpose = expose.purpose),
								  'See retention.policy for the purposes of the regime in force.');
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = to_role) THEN
		RAISE EXCEPTION 'role "%" does not exist', to_role
			USING ERRCODE = 'undefined_object';
	END IF;
	IF EXISTS (SELECT 1 FROM retention.exposure e
				WHERE e.relid = tbl AND e.purpose = expose.purpose AND e.role = to_role) THEN
		RAISE EXCEPTION 'table % is already exposed for % to role "%"', tbl, purpose, to_role
			USING ERRCODE = 'duplicate_object';
	END IF;
	-- CJEU C-470/21: no view combines connection-source data with other
	-- traffic data (the view may exist from before: it is not granted on)
	SELECT * INTO mix FROM retention._separation(tbl, purpose);
	IF mix.connection IS NOT NULL AND mix.other IS NOT NULL THEN
		RAISE EXCEPTION 'cannot expose % for %: the view would combine connection-source data with other traffic data',
						tbl, purpose
			USING ERRCODE = 'feature_not_supported',
				  DETAIL = format('Connection-source data (CPCE L34-1 II bis 3°): %s; other traffic data: %s.',
								  array_to_string(mix.connection, ', '), array_to_string(mix.other, ', ')),
				  HINT = 'CJEU C-470/21 admits the retention of connection-source data only with an effective and strict separation from other traffic data: keep them in a table of their own.';
	END IF;
	SELECT c.relname || '_' || purpose, n.nspname INTO view_name, nsp
	  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
	IF EXISTS (SELECT 1 FROM retention.exposure e WHERE e.relid = tbl AND e.purpose = expose.purpose) THEN
		-- the view exists for another role: grant it too
		IF NOT pg_catalog.has_schema_privilege(to_role, nsp, 'USAGE') THEN
			EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', nsp, to_role);
		END IF;
		EXECUTE format('GRANT SELECT ON %I.%I TO %I', nsp, view_name, to_role);
	ELSE
		IF pg_catalog.to_regclass(format('%I.%I', nsp, view_name)) IS NOT NULL THEN
			RAISE EXCEPTION 'relation "%" already exists', view_name
				USING ERRCODE = 'duplicate_table',
					  HINT = 'Rename or drop it: retention.expose() creates a view of that name.';
		END IF;
		PERFORM retention._create_exposure(tbl, purpose, to_role, view_name);
	END IF;
	INSERT INTO retention.exposure (relid, purpose, role, view_name)
		VALUES (tbl, purpose, to_role, view_name);
	PERFORM retention._audit('expose', tbl::text,
							 jsonb_build_object('purpose', purpose, 'role', to_role, 'view', view_name));
	RETURN format('%I.%I', nsp, view_name)::regclass;
END
$$;

/*------------------------------------------------------------------------
 * The nightly sweep costs what is due, not what is kept (issue 16)
 *
 * retention.sweep_mark records, for each leaf relation of a protected
 * table, the cutoff of the last run that swept it to the end skipping
 * nothing: the next run visits only the rows that fell due by time since
 * (src/sweep.c).  Rows that fall due for another reason are found by a full
 * pass, which retention.request_full_sweep() asks for: a hold released or
 * its end changed, a consent withdrawn, a window changed, the table
 * protected again (the triggers below), a legal regime switched (its
 * caller).  Not dumped: a restored database starts with a full pass.
 *------------------------------------------------------------------------
 */

CREATE TABLE retention.sweep_mark (
	relid			regclass PRIMARY KEY,	-- a leaf relation
	root			regclass NOT NULL,		-- its protected table
	swept_cutoff	timestamptz,			-- of the last run that left nothing due by time
	signature		text,					-- the rules it was swept by (columns, windows)
	full_pass_after	timestamptz,			-- a hold's until or a consent's end
	requested_at	timestamptz,			-- a full pass was asked for
	reason			text
);
CREATE INDEX sweep_mark_root ON retention.sweep_mark (root);
REVOKE ALL ON retention.sweep_mark FROM PUBLIC;
GRANT SELECT ON retention.sweep_mark TO retention_admin;
COMMENT ON TABLE retention.sweep_mark IS
	'Per leaf of a protected table: how far the last complete sweep went, and whether a full pass is due';

CREATE FUNCTION retention.request_full_sweep(tbl regclass DEFAULT NULL, reason text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
BEGIN
	IF tbl IS NOT NULL AND NOT EXISTS (SELECT 1 FROM retention.protected_table pt WHERE pt.relid = tbl) THEN
		RAISE EXCEPTION 'table "%" is not protected', tbl
			USING ERRCODE = 'undefined_object',
				  HINT = 'Protect it first with retention.protect().';
	END IF;
	INSERT INTO retention.sweep_mark AS m (relid, root, requested_at, reason)
	SELECT p.relid, pt.relid, pg_catalog.clock_timestamp(), request_full_sweep.reason
	  FROM retention.protected_table pt
	 CROSS JOIN LATERAL (SELECT t.relid FROM pg_catalog.pg_partition_tree(pt.relid) t
						 UNION SELECT pt.relid) p
	  JOIN pg_catalog.pg_class c ON c.oid = p.relid AND c.relkind = 'r'
	 WHERE request_full_sweep.tbl IS NULL OR pt.relid = request_full_sweep.tbl
	ON CONFLICT (relid) DO UPDATE SET requested_at = excluded.requested_at, reason = excluded.reason;
END
$$;
COMMENT ON FUNCTION retention.request_full_sweep(regclass, text) IS
	'Make the next sweep of a table (NULL: of every table) visit every row, not only those due since the last sweep';
REVOKE ALL ON FUNCTION retention.request_full_sweep(regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.request_full_sweep(regclass, text) TO retention_admin;

-- the events that make rows due other than by time passing
CREATE FUNCTION retention._hold_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM retention.protected_table pt WHERE pt.relid = OLD.relid) THEN
		PERFORM retention.request_full_sweep(OLD.relid,
			CASE WHEN TG_OP = 'DELETE' THEN 'hold ' || OLD.id || ' deleted'
				 WHEN NEW.released_at IS NOT NULL AND OLD.released_at IS NULL THEN 'hold ' || OLD.id || ' released'
				 ELSE 'hold ' || OLD.id || ' changed' END);
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER hold_changed
	AFTER UPDATE OF released_at, until, from_ts, to_ts, subscriber, reason OR DELETE ON retention.hold
	FOR EACH ROW EXECUTE FUNCTION retention._hold_changed();

CREATE FUNCTION retention._consent_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	p		record;
BEGIN
	-- withdrawn, shortened or deleted: the tables kept for marketing
	IF TG_OP = 'UPDATE' AND NEW.withdrawn_at IS NOT DISTINCT FROM OLD.withdrawn_at
	   AND NEW.valid_until >= OLD.valid_until AND NEW.contract_end >= OLD.contract_end THEN
		RETURN NULL;
	END IF;
	FOR p IN SELECT pt.relid FROM retention.protected_table pt
			  WHERE EXISTS (SELECT 1 FROM retention.tagged_columns(pt.relid) t
							 WHERE 'marketing' = ANY (t.purposes)) LOOP
		PERFORM retention.request_full_sweep(p.relid, 'a consent was withdrawn or shortened');
	END LOOP;
	RETURN NULL;
END
$$;
CREATE TRIGGER consent_changed
	AFTER UPDATE OR DELETE ON retention.consent
	FOR EACH ROW EXECUTE FUNCTION retention._consent_changed();

-- a location consent suspended, withdrawn, shortened or deleted, an
-- emergency closed (issue 15): the tables kept for location
CREATE FUNCTION retention._location_consent_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	p		record;
BEGIN
	IF TG_OP = 'UPDATE' AND NEW.withdrawn_at IS NOT DISTINCT FROM OLD.withdrawn_at
	   AND (NEW.suspended_at IS NULL OR OLD.suspended_at IS NOT NULL)
	   AND NEW.closed_at IS NOT DISTINCT FROM OLD.closed_at
	   AND NEW.valid_until IS NOT DISTINCT FROM OLD.valid_until THEN
		RETURN NULL;
	END IF;
	FOR p IN SELECT pt.relid FROM retention.protected_table pt
			  WHERE EXISTS (SELECT 1 FROM retention.tagged_columns(pt.relid) t
							 WHERE 'location' = ANY (retention._column_rules(pt.relid, t.attname))) LOOP
		PERFORM retention.request_full_sweep(p.relid, 'a location consent was suspended, withdrawn or closed');
	END LOOP;
	RETURN NULL;
END
$$;
CREATE TRIGGER location_consent_changed
	AFTER UPDATE OR DELETE ON retention.location_consent
	FOR EACH ROW EXECUTE FUNCTION retention._location_consent_changed();

CREATE FUNCTION retention._window_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
BEGIN
	PERFORM retention.request_full_sweep(NULL, 'a retention window changed');
	RETURN NULL;
END
$$;
CREATE TRIGGER window_setting_sweep
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON retention.window_setting
	FOR EACH STATEMENT EXECUTE FUNCTION retention._window_changed();

-- protected again, or no longer: the table's marks go
CREATE FUNCTION retention._protection_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
BEGIN
	DELETE FROM retention.sweep_mark m
	 WHERE m.root::oid IN (CASE WHEN TG_OP <> 'INSERT' THEN OLD.relid::oid END,
						   CASE WHEN TG_OP <> 'DELETE' THEN NEW.relid::oid END);
	RETURN NULL;
END
$$;
CREATE TRIGGER protected_table_sweep
	AFTER INSERT OR UPDATE OR DELETE ON retention.protected_table
	FOR EACH ROW EXECUTE FUNCTION retention._protection_changed();

/*
 * What keeps the sweep of a protected table from costing what is due: no
 * btree (or BRIN) index on ended_at in a leaf of more than 1 MB (its
 * batches then read every block), a billing anchor (whose deadline is not
 * ended_at's: every sweep visits every row up to now).  Shown by report()
 * and by protect().
 */
CREATE FUNCTION retention._sweep_drive_problems(tbl regclass)
RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
	WITH pt AS (SELECT * FROM retention.protected_table p WHERE p.relid = tbl),
	leaf AS (
		SELECT c.oid, c.relname, a.attnum,
			   pg_catalog.pg_relation_size(c.oid) > 1024 * 1024 AS big
		  FROM pt CROSS JOIN LATERAL (SELECT t.relid FROM pg_catalog.pg_partition_tree(pt.relid) t
									  UNION SELECT pt.relid) p
		  JOIN pg_catalog.pg_class c ON c.oid = p.relid AND c.relkind = 'r'
		  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = pt.ended_at
	),
	slow AS (
		SELECT l.relname FROM leaf l
		 WHERE l.big AND NOT EXISTS (
			SELECT 1 FROM pg_catalog.pg_index i
			  JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
			  JOIN pg_catalog.pg_am am ON am.oid = ic.relam
			 WHERE i.indrelid = l.oid AND i.indisvalid AND i.indpred IS NULL
			   AND i.indkey[0] = l.attnum AND am.amname IN ('btree', 'brin'))
	)
	SELECT pg_catalog.format('no index on %I in %s of its %s relations over 1 MB: each sweep reads all of them; CREATE INDEX ON %s (%I) (or USING brin) makes it read only what is due',
							 pt.ended_at, (SELECT count(*) FROM slow), (SELECT count(*) FROM leaf WHERE big),
							 pt.relid, pt.ended_at)
	  FROM pt WHERE EXISTS (SELECT 1 FROM slow)
	UNION ALL
	SELECT pg_catalog.format('billing anchor %I: the billing deadline is not %I''s, so each sweep visits every row that ended before now',
							 pt.billing_anchor, pt.ended_at)
	  FROM pt WHERE pt.billing_anchor IS NOT NULL AND EXISTS (SELECT 1 FROM leaf WHERE big)
$$;
COMMENT ON FUNCTION retention._sweep_drive_problems(regclass) IS
	'What keeps the sweep of a protected table from visiting only the rows that are due';
REVOKE ALL ON FUNCTION retention._sweep_drive_problems(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention._sweep_drive_problems(regclass) TO retention_admin;

/*------------------------------------------------------------------------
 * The sweep's fixed cost per run (issue 16)
 *
 * A nightly run of a table is mostly its bookkeeping.  The sweep's first
 * sweep_log row of a table comes with its regime and cutoffs (sweep.c,
 * insert_log(), from the same engine): retention._sweep_log_rules() fires
 * only for a 'running' row inserted without them.
 */
DROP TRIGGER sweep_log_rules ON retention.sweep_log;
CREATE TRIGGER sweep_log_rules
	BEFORE INSERT ON retention.sweep_log
	FOR EACH ROW WHEN (NEW.status = 'running' AND NEW.cutoffs IS NULL)
	EXECUTE FUNCTION retention._sweep_log_rules();

-- Each run of a table first marks 'interrupted' what an earlier run left
-- 'running': found by this index, not among the table's year of log rows.
CREATE INDEX sweep_log_running ON retention.sweep_log (relid) WHERE status = 'running';
-- and prunes the log (retention.log_keep): by this one, not by a read of it
CREATE INDEX sweep_log_started ON retention.sweep_log (started_at);

/*------------------------------------------------------------------------
 * Every search_path pinned with pg_temp last (issue 13, item 1)
 *
 * KEEP THIS SECTION LAST: it applies to every function defined above it,
 * whatever section (re)defined it.
 *
 * 1.0 pinned search_path = pg_catalog, retention: pg_temp, not named, is
 * then searched FIRST for relations, so a relation in the caller's temp
 * schema called pg_roles, pg_class or pg_namespace shadowed the catalog in
 * SECURITY DEFINER functions and in the superuser-owned event triggers.
 * Every function or procedure of schema retention that sets search_path,
 * or is SECURITY DEFINER, now sets it to pg_catalog, retention, pg_temp.
 *------------------------------------------------------------------------
 */

DO $pin$
DECLARE
	f	record;
BEGIN
	FOR f IN SELECT p.oid::pg_catalog.regprocedure AS sig, p.prokind
			   FROM pg_catalog.pg_proc p
			  WHERE p.pronamespace = 'retention'::pg_catalog.regnamespace
				-- the two C event trigger functions resolve the statement's
				-- table in the caller's search_path, then pin their own
				-- (guard.c): a setting here would make them misread it
				AND p.oid <> 'retention._guard_start()'::pg_catalog.regprocedure
				AND p.oid <> 'retention._exposures_drop()'::pg_catalog.regprocedure
				AND (p.prosecdef
					 OR EXISTS (SELECT 1 FROM pg_catalog.unnest(p.proconfig) c
								 WHERE c OPERATOR(pg_catalog.~~) 'search\_path=%'))
			  ORDER BY p.oid LOOP
		EXECUTE pg_catalog.format('ALTER %s %s SET search_path = pg_catalog, retention, pg_temp',
								  CASE f.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
								  f.sig);
	END LOOP;
END
$pin$;
