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
	IF method = 'generalize' AND t.type = 'retention.ident'::pg_catalog.regtype THEN
		RAISE EXCEPTION 'type retention.ident cannot be generalized'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'An identifier has no coarser form: use erase or hash.';
	END IF;
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
	PERFORM retention._audit('withdraw_consent', NULL,
							 jsonb_strip_nulls(jsonb_build_object(
								'rows_changed', n,
								'tables_unmatched', CASE WHEN cardinality(unmatched) > 0 THEN to_jsonb(unmatched) END,
								'tables_failed', CASE WHEN cardinality(failed) > 0 THEN to_jsonb(failed) END)));
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
-- session settings
CREATE FUNCTION retention._audit_text(encoding smallint, id bigint, at timestamptz,
									  actor name, as_role name, action text, object text,
									  details jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE encoding
		WHEN 1 THEN retention._audit_text(id, at, actor, as_role, action, object, details)
		WHEN 2 THEN pg_catalog.jsonb_build_array(
						'retention audit 2', id,
						pg_catalog.to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
						actor::text, as_role::text, action, object, details)::text
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
