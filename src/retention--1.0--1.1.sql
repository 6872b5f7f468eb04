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
