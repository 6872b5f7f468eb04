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
-- anchor is bounded.  Holds and consents have a bounded term.
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
	p		retention.purpose%ROWTYPE;
	old		interval;
	w		interval := set_window."window";
	m		double precision;
	d		double precision;
	s		double precision;
BEGIN
	SELECT * INTO p FROM retention.purpose pu WHERE pu.purpose = set_window.purpose;
	IF NOT FOUND THEN
		PERFORM retention._unknown_purpose(set_window.purpose);
	END IF;
	IF p.ceiling IS NULL THEN
		RAISE EXCEPTION 'purpose "%" has no fixed window', p.purpose
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'Marketing data are kept only under the subscriber''s express consent, for the consent''s own duration.',
				  HINT = pg_catalog.format('See %s; use retention.grant_consent().', p.legal_basis);
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
	IF NOT retention._window_within(w, p.ceiling) THEN
		RAISE EXCEPTION 'retention window % for purpose "%" exceeds its legal ceiling of %',
				w, p.purpose, p.ceiling
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = pg_catalog.format('Windows compare with ceilings as calendar time: counted from some day, %s ends later than %s.',
											 w, p.ceiling),
				  HINT = pg_catalog.format('%s allows keeping %s data at most %s.', p.legal_basis,
										   pg_catalog.replace(p.purpose, '_', ' '), p.ceiling);
	END IF;

	SELECT pol."window" INTO old FROM retention.policy pol WHERE pol.purpose = p.purpose;
	INSERT INTO retention.window_setting AS ws (purpose, "window")
		VALUES (p.purpose, w)
		ON CONFLICT ON CONSTRAINT window_setting_pkey
		DO UPDATE SET "window" = excluded."window", set_at = pg_catalog.now(), set_by = session_user;
	PERFORM retention._audit('set_window', p.purpose,
							 pg_catalog.jsonb_build_object('old', old::text, 'new', w::text));
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
CREATE OR REPLACE FUNCTION retention.report()
RETURNS TABLE ("table" regclass, "column" name, kind text, type regtype, purposes text[],
			   "window" interval, method text, rows_in_clear bigint, oldest_clear timestamptz,
			   overdue_rows bigint, held_rows bigint, last_sweep timestamptz, note text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
SET intervalstyle = postgres
AS $$
DECLARE
	p		retention.protected_table;
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
	SELECT pu.ceiling INTO ceil FROM retention.purpose pu WHERE pu.purpose = 'billing';
	-- each purpose's window as the rules apply it: capped by its ceiling
	SELECT pg_catalog.jsonb_object_agg(pol.purpose,
			   CASE WHEN pol.ceiling IS NULL OR retention._window_within(pol."window", pol.ceiling)
					THEN pol."window" ELSE pol.ceiling END)
	  INTO windows FROM retention.policy pol;
	FOR p IN SELECT * FROM retention.protected_table ORDER BY relid::text LOOP
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
		EXECUTE pg_catalog.format('SELECT jsonb_build_array(%s count(*) FILTER (WHERE b)) '
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
			SELECT pg_catalog.max((windows->>pu)::interval) INTO "window"
			  FROM pg_catalog.unnest(cols.purposes) pu;
			method := cols.method;
			rows_in_clear := (res->i->>0)::bigint;
			oldest_clear := (res->i->>1)::timestamptz;
			overdue_rows := (res->i->>2)::bigint;
			held_rows := (res->i->>3)::bigint;
			last_sweep := swept;
			note := CASE WHEN cols.purposes = '{}' THEN 'kept for no purpose: erased when the call ends'
						 WHEN cols.purposes = '{marketing}' THEN 'kept only under consent'
						 WHEN method = 'hash' THEN 'pseudonymized at its deadline, erased at the row''s last'
					END;
			RETURN NEXT;
			i := i + 1;
		END LOOP;
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

-- Holds and consents have a term.  An order (judicial_request,
-- quick_freeze) lasts at most a year (CPCE L34-1 II), renewed by a new
-- hold; an until given to a billing dispute is bounded alike (without one
-- it lasts until released).  A consent is "pour une durée déterminée": at
-- most three years from its grant (the CNIL's term for prospection data).
-- Checked on every write of the tables, retention's functions, a direct
-- INSERT and a restore alike; counted in UTC, whatever TimeZone says.
CREATE FUNCTION retention._hold_term()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, retention, pg_temp
AS $$
BEGIN
	-- a year in UTC, or in the session's zone (an hour apart at most across
	-- a daylight-saving change): until => now() + interval '1 year' fits
	IF NEW.until IS NOT NULL AND
	   (NOT pg_catalog.isfinite(NEW.until) OR
		NEW.until > greatest(((NEW.placed_at AT TIME ZONE 'UTC') + interval '1 year') AT TIME ZONE 'UTC',
							 NEW.placed_at + interval '1 year')) THEN
		RAISE EXCEPTION 'a hold must end within a year of being placed'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = pg_catalog.format('until is %s; the hold is placed at %s.', NEW.until, NEW.placed_at),
				  HINT = 'CPCE L34-1 II: an order to preserve data lasts at most one year; place a new hold when it is renewed, or give a billing dispute no until.';
	END IF;
	RETURN NEW;
END
$$;

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
				  HINT = 'CPCE L34-1 III ¶2 allows marketing use only for a fixed duration: ask the subscriber to renew the consent when it ends.';
	END IF;
	RETURN NEW;
END
$$;

-- rows an upgraded 1.0 database holds past these terms are brought within
-- them (audited), so that its dumps restore
DO $$
DECLARE
	r	record;
BEGIN
	FOR r IN UPDATE retention.hold h
				SET until = ((h.placed_at AT TIME ZONE 'UTC') + interval '1 year') AT TIME ZONE 'UTC'
			  WHERE h.until IS NOT NULL
				AND (NOT pg_catalog.isfinite(h.until)
					 OR h.until > ((h.placed_at AT TIME ZONE 'UTC') + interval '1 year') AT TIME ZONE 'UTC')
			 RETURNING h.id, h.relid, h.until LOOP
		PERFORM retention._audit('bound_hold', r.relid::text,
								 pg_catalog.jsonb_build_object('hold', r.id, 'until', r.until));
	END LOOP;
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

CREATE TRIGGER hold_term
	BEFORE INSERT OR UPDATE OF until, placed_at ON retention.hold
	FOR EACH ROW EXECUTE FUNCTION retention._hold_term();
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

CREATE OR REPLACE FUNCTION retention._exposure_sql(tbl regclass, purpose text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	p		retention.protected_table;
	cols	text;
	cond	text;
	ended	text;
BEGIN
	SELECT * INTO STRICT p FROM retention.protected_table pt WHERE pt.relid = tbl;
	SELECT pg_catalog.string_agg(pg_catalog.format('x.%I', a.attname), ', ' ORDER BY a.attnum) INTO cols
	  FROM pg_catalog.pg_attribute a
	 WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped
	   AND (NOT EXISTS (SELECT 1 FROM retention.tagged_columns(tbl) t WHERE t.attname = a.attname)
			OR EXISTS (SELECT 1 FROM retention.tagged_columns(tbl) t
						WHERE t.attname = a.attname AND purpose = ANY (t.purposes)));
	IF purpose = 'marketing' THEN
		cond := CASE WHEN p.subscriber IS NULL THEN 'false' ELSE pg_catalog.format(
			'EXISTS (SELECT 1 FROM retention.consent c WHERE c.subscriber = x.%I::text '
			'AND c.withdrawn_at IS NULL AND least(c.valid_until, c.contract_end) > now())',
			p.subscriber) END;
	ELSE
		cond := pg_catalog.format('retention._window_open(%L, x.%I, %s)', purpose, p.ended_at,
								  CASE WHEN purpose = 'billing' AND p.billing_anchor IS NOT NULL
									   THEN pg_catalog.format('x.%I', p.billing_anchor)
									   ELSE 'NULL::timestamptz' END);
		-- rows a hold keeps for this purpose: disputes for billing, orders
		-- for law enforcement
		IF p.subscriber IS NOT NULL AND purpose IN ('billing', 'law_enforcement') THEN
			ended := CASE WHEN (SELECT a.atttypid FROM pg_catalog.pg_attribute a
								 WHERE a.attrelid = tbl AND a.attname = p.ended_at) = 'timestamp'::regtype
						  THEN pg_catalog.format('retention._instant(x.%I)', p.ended_at)
						  ELSE pg_catalog.format('x.%I', p.ended_at) END;
			cond := cond || pg_catalog.format(' OR EXISTS (SELECT 1 FROM retention.hold h WHERE h.relid = %L::regclass '
								   'AND h.subscriber = x.%I::text AND h.released_at IS NULL '
								   'AND (h.until IS NULL OR h.until > now()) AND %s BETWEEN h.from_ts AND h.to_ts '
								   'AND h.reason %s)',
								   tbl::oid, p.subscriber, ended,
								   CASE WHEN purpose = 'billing' THEN '= ''billing_dispute'''
										ELSE 'IN (''judicial_request'', ''quick_freeze'')' END);
		END IF;
	END IF;
	RETURN pg_catalog.format('SELECT %s FROM %s x WHERE %s', cols, tbl, cond);
END
$$;

-- the exposure views of an upgraded database, rebuilt with the new rule
DO $$
DECLARE
	e		record;
BEGIN
	FOR e IN SELECT DISTINCT x.relid, x.purpose, x.view_name, n.nspname
			   FROM retention.exposure x
			   JOIN pg_catalog.pg_class c ON c.oid = x.relid
			   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace LOOP
		IF pg_catalog.to_regclass(pg_catalog.format('%I.%I', e.nspname, e.view_name)) IS NOT NULL THEN
			-- an extension script replaces only its members: the view is one
			-- for the moment it is replaced (its grants and dependents stay)
			EXECUTE pg_catalog.format('ALTER EXTENSION retention ADD VIEW %I.%I', e.nspname, e.view_name);
			EXECUTE pg_catalog.format('CREATE OR REPLACE VIEW %I.%I WITH (security_barrier) AS %s',
									  e.nspname, e.view_name, retention._exposure_sql(e.relid, e.purpose));
			EXECUTE pg_catalog.format('ALTER EXTENSION retention DROP VIEW %I.%I', e.nspname, e.view_name);
		END IF;
	END LOOP;
END
$$;
