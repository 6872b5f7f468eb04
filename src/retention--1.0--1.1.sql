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
BEGIN
	DELETE FROM retention.protected_table pt WHERE pt.relid = tbl;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table % is not protected', tbl
			USING ERRCODE = 'undefined_object';
	END IF;
	FOR t IN SELECT tg.tgname FROM pg_catalog.pg_trigger tg
			  WHERE tg.tgrelid = tbl AND tg.tgparentid = 0
				AND tg.tgfoid = ANY (retention._expiry_functions()) LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, tbl);
	END LOOP;
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
			CONTINUE WHEN rel IS NULL;
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
			   overdue_rows bigint, held_rows bigint, last_sweep timestamptz, note text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
SET intervalstyle = postgres
AS $$
DECLARE
	r		record;
	n		bigint;
BEGIN
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
						 AND c.withdrawn_at IS NULL AND least(c.valid_until, c.contract_end) > now());
	END IF;
	RETURN EXISTS (SELECT 1 FROM retention.hold h
					WHERE h.relid = root AND h.subscriber = sub AND h.released_at IS NULL
					  AND (h.until IS NULL OR h.until > now()) AND ended BETWEEN h.from_ts AND h.to_ts
					  AND CASE WHEN purpose = 'billing' THEN h.reason = 'billing_dispute'
							   WHEN purpose = 'law_enforcement' THEN h.reason IN ('judicial_request', 'quick_freeze')
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
	cols	text;
	cond	text;
BEGIN
	SELECT * INTO STRICT p FROM retention.protected_table pt WHERE pt.relid = tbl;
	SELECT string_agg(format('x.%I', a.attname), ', ' ORDER BY a.attnum) INTO cols
	  FROM pg_catalog.pg_attribute a
	 WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped
	   AND (NOT EXISTS (SELECT 1 FROM retention.tagged_columns(tbl) t WHERE t.attname = a.attname)
			OR EXISTS (SELECT 1 FROM retention.tagged_columns(tbl) t
						WHERE t.attname = a.attname AND purpose = ANY (t.purposes)));
	IF purpose = 'marketing' THEN
		cond := CASE WHEN p.subscriber IS NULL THEN 'false'
					 ELSE 'retention._exposure_kept(x.tableoid, x.ctid, ''marketing'')' END;
	ELSE
		-- the window as the rules decide it: capped by its ceiling as
		-- calendar time, the anchor bounded, timestamps in retention's zone
		cond := format('retention._window_open(%L, x.%I, %s)', purpose, p.ended_at,
					   CASE WHEN purpose = 'billing' AND p.billing_anchor IS NOT NULL
							THEN format('x.%I', p.billing_anchor)
							ELSE 'NULL::timestamptz' END);
		IF p.subscriber IS NOT NULL AND purpose IN ('billing', 'law_enforcement') THEN
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

-- ddl_command_end of ALTER TABLE: the exposure views of the tables it
-- altered, and only those, are rebuilt from the table as it now is
CREATE OR REPLACE FUNCTION retention._exposures_create()
RETURNS event_trigger
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
			  WHERE x.relid::pg_catalog.oid IN (SELECT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c
												  WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass)
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
				  HINT = 'Give until => the end of the preservation order (CPCE L34-1 II: at most one year).';
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

CREATE OR REPLACE FUNCTION retention.anonymize(tbl regclass, subscriber text,
	OUT rows_anonymized bigint, OUT rows_deleted bigint, OUT rows_held bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention, pg_temp
AS $$
DECLARE
	v		text := retention._subscriber_value(tbl, subscriber);
BEGIN
	-- a hold being placed on this table finishes first
	PERFORM retention._lock(tbl, 'hold', shared => true);
	SELECT a.rows_anonymized, a.rows_deleted, a.rows_held
	  INTO rows_anonymized, rows_deleted, rows_held
	  FROM retention._anonymize_subscriber(tbl, v, true) a;
	-- counts only: the audit log outlives the data and must not keep it
	PERFORM retention._audit('anonymize_subscriber', tbl::text,
							 jsonb_build_object('rows_anonymized', rows_anonymized,
												'rows_deleted', rows_deleted,
												'rows_held', rows_held));
END
$$;

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
	IF pg_catalog.to_regclass('retention.regime') IS NOT NULL THEN
		EXECUTE 'SELECT pg_catalog.string_agg(pg_catalog.format(''<tr><th>%s</th><td><code>%s</code></td></tr>'','
				|| ' retention._html(e.key), retention._html(e.value)), '''' ORDER BY e.key)'
				|| ' FROM retention.regime g, LATERAL pg_catalog.jsonb_each_text(pg_catalog.to_jsonb(g)) e'
		   INTO rows;
		h := h || '<p>Regimes (<code>retention.regime</code>):</p><table>' || coalesce(rows, '') || '</table>';
	ELSE
		h := h || '<p>French Code des postes et des communications électroniques (CPCE), article L34-1 and R10-13 to R10-14: traffic data are erased or made anonymous, except for the purposes and periods below.</p>';
	END IF;
	SELECT pg_catalog.string_agg(pg_catalog.format('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>',
			retention._html(p.purpose), coalesce(retention._html(p."window"), 'each consent''s own'),
			coalesce(retention._html(p.ceiling), 'the contract''s end'), retention._html(p.legal_basis)), '' ORDER BY p.purpose)
	  INTO rows FROM retention.policy p;
	h := h || '<table><tr><th>purpose</th><th>window</th><th>legal ceiling</th><th>legal basis</th></tr>'
		   || coalesce(rows, '') || '</table>';
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
-- otherwise, with search_path pinned
-- ---------------------------------------------------------------------
CREATE OR REPLACE FUNCTION retention.protect(tbl regclass, ended_at name,
								  subscriber name DEFAULT NULL,
								  on_expiry text DEFAULT 'delete',
								  billing_anchor name DEFAULT NULL)
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

	INSERT INTO retention.protected_table (relid, ended_at, subscriber, on_expiry, billing_anchor, columns)
		VALUES (tbl, protect.ended_at, protect.subscriber, protect.on_expiry, protect.billing_anchor,
				retention._tags(tbl));
	PERFORM retention._create_triggers(tbl);
	PERFORM retention._audit('protect', tbl::text,
							 jsonb_build_object('ended_at', ended_at, 'subscriber', subscriber,
												'on_expiry', on_expiry, 'billing_anchor', billing_anchor,
												'columns', retention._tags(tbl)));
	-- the index the sweep needs to cost what is due, not what is kept (issue 16)
	FOR c IN SELECT d AS why FROM retention._sweep_drive_problems(tbl) d LOOP
		RAISE NOTICE 'the sweep of % will read more than what is due', tbl USING DETAIL = c.why;
	END LOOP;
END
$$;
COMMENT ON FUNCTION retention.protect(regclass, name, name, text, name) IS
	'Put a table under retention: expiry triggers now, sweeps later (audited)';

REVOKE ALL ON FUNCTION retention.protect(regclass, name, name, text, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.protect(regclass, name, name, text, name) TO retention_admin;

-- ---------------------------------------------------------------------
-- Issue 17: IP addresses as idents.  FreeRADIUS writes its framed
-- addresses as inet (NULLIF(...)::inet); a column of type inet or cidr
-- becomes an ident by ALTER COLUMN ... TYPE alone, and its writer's
-- statements keep working.  (generalize keeps an IP address's /24 or /48
-- prefix: src/types.c, src/anonymize.c.)
-- ---------------------------------------------------------------------
CREATE CAST (inet AS retention.ident) WITH INOUT AS ASSIGNMENT;
CREATE CAST (cidr AS retention.ident) WITH INOUT AS ASSIGNMENT;

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
