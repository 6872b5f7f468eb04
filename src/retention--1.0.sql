/* src/retention--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION retention CASCADE" to load this file. \quit

/*
 * The SQL surface of retention, in the order of the README's reference:
 * roles, policy, audit log, then each capability.  Catalog tables that hold
 * an operator's settings are marked with pg_extension_config_dump() so that
 * they survive pg_dump and restore; everything else is recreated by
 * CREATE EXTENSION.  Functions that change policy are SECURITY DEFINER with
 * a pinned search_path, executable by retention_admin only.
 */

--------------------------------------------------------------------------
-- Roles
--------------------------------------------------------------------------

-- Roles are cluster-wide: a second database's CREATE EXTENSION finds it.
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'retention_admin') THEN
		CREATE ROLE retention_admin NOLOGIN;
	END IF;
END
$$;

GRANT USAGE ON SCHEMA retention TO PUBLIC;

--------------------------------------------------------------------------
-- Cache invalidation: the C module caches policy and table metadata per
-- backend; a change to a catalog table invalidates it in every backend at
-- commit.
--------------------------------------------------------------------------

CREATE FUNCTION retention._catalog_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'retention_catalog_changed'
LANGUAGE C;

--------------------------------------------------------------------------
-- Audit log: append-only, each row chained to the previous one by SHA-256
--------------------------------------------------------------------------

-- the role in effect outside SECURITY DEFINER functions (SET ROLE's)
CREATE FUNCTION retention._outer_role()
RETURNS name
AS 'MODULE_PATHNAME', 'retention_outer_role'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

CREATE TABLE retention.audit_log (
	id			bigint PRIMARY KEY,
	at			timestamptz NOT NULL,
	actor		name NOT NULL,			-- session_user
	as_role		name NOT NULL,			-- the role after SET ROLE
	action		text NOT NULL,
	object		text,
	details		jsonb,
	prev_hash	bytea NOT NULL,
	hash		bytea NOT NULL
);
COMMENT ON TABLE retention.audit_log IS
	'Append-only, hash-chained log of every retention policy action';
SELECT pg_catalog.pg_extension_config_dump('retention.audit_log', '');

-- the text a row's hash covers: independent of session settings
CREATE FUNCTION retention._audit_text(id bigint, at timestamptz, actor name, as_role name,
									  action text, object text, details jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
	SELECT concat_ws('|', id,
					 to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
					 actor, as_role, action, coalesce(object, ''), coalesce(details::text, ''))
$$;

-- append one row; serialized so that the chain never forks
CREATE FUNCTION retention._audit(action text, object text, details jsonb DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
AS $$
DECLARE
	last_id		bigint;
	last_hash	bytea;
	new_id		bigint;
	new_at		timestamptz := clock_timestamp();
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
	new_hash := sha256(last_hash ||
					   convert_to(retention._audit_text(new_id, new_at, who, whom, action, object, details), 'UTF8'));
	INSERT INTO retention.audit_log (id, at, actor, as_role, action, object, details, prev_hash, hash)
	VALUES (new_id, new_at, who, whom, action, object, details, last_hash, new_hash);
	RETURN new_id;
END
$$;

CREATE FUNCTION retention._audit_log_refuse()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
	RAISE EXCEPTION 'retention.audit_log is append-only'
		USING ERRCODE = 'insufficient_privilege',
			  DETAIL = format('%s is not allowed on the audit log.', TG_OP),
			  HINT = 'Rows are added by retention''s own functions; retention.verify_audit_log() checks the chain.';
END
$$;

CREATE TRIGGER audit_log_append_only
	BEFORE UPDATE OR DELETE ON retention.audit_log
	FOR EACH ROW EXECUTE FUNCTION retention._audit_log_refuse();
CREATE TRIGGER audit_log_no_truncate
	BEFORE TRUNCATE ON retention.audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION retention._audit_log_refuse();

-- walk the chain; report the first broken link, if any
CREATE FUNCTION retention.verify_audit_log(
	OUT valid boolean,
	OUT rows_checked bigint,
	OUT first_broken_id bigint,
	OUT problem text,
	OUT head_id bigint,
	OUT head_hash text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, retention
AS $$
DECLARE
	r			record;
	prev_id		bigint := 0;
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
		ELSIF r.hash <> sha256(prev || convert_to(retention._audit_text(r.id, r.at, r.actor, r.as_role,
																		 r.action, r.object, r.details),
												  'UTF8')) THEN
			problem := format('row %s was changed after it was written', r.id);
			first_broken_id := r.id;
		END IF;
		IF problem IS NOT NULL THEN
			valid := false;
			EXIT;
		END IF;
		rows_checked := rows_checked + 1;
		prev_id := r.id;
		prev := r.hash;
	END LOOP;
	head_id := nullif(prev_id, 0);
	head_hash := CASE WHEN prev_id > 0 THEN encode(prev, 'hex') END;
END
$$;
COMMENT ON FUNCTION retention.verify_audit_log() IS
	'Check the audit log''s hash chain; names the first row changed or removed';

--------------------------------------------------------------------------
-- Policy: purposes, their windows and legal ceilings (SPEC 3.4)
--------------------------------------------------------------------------

-- the law: recreated by CREATE EXTENSION, never dumped
CREATE TABLE retention.purpose (
	purpose			text PRIMARY KEY,
	default_window	interval,
	ceiling			interval,
	legal_basis		text NOT NULL,
	CHECK (default_window <= ceiling)
);
INSERT INTO retention.purpose VALUES
	('billing',				'1 year',	'1 year',	'CPCE L34-1 III and L34-2'),
	('law_enforcement',		'1 year',	'1 year',	'CPCE L34-1 II'),
	('marketing',			NULL,		NULL,		'CPCE L34-1 III ¶2 (express consent, for its duration, never past the contract)'),
	('network_security',	'3 months',	'3 months',	'CPCE L34-1 III ¶3 and R10-14 IV');

-- the operator's settings: dumped
CREATE TABLE retention.window_setting (
	purpose		text PRIMARY KEY REFERENCES retention.purpose,
	"window"	interval NOT NULL,
	set_at		timestamptz NOT NULL DEFAULT now(),
	set_by		name NOT NULL DEFAULT session_user
);
SELECT pg_catalog.pg_extension_config_dump('retention.window_setting', '');
CREATE TRIGGER window_setting_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON retention.window_setting
	FOR EACH STATEMENT EXECUTE FUNCTION retention._catalog_changed();

CREATE VIEW retention.policy AS
	SELECT p.purpose,
		   coalesce(s."window", p.default_window) AS "window",
		   p.ceiling,
		   p.legal_basis
	  FROM retention.purpose p
	  LEFT JOIN retention.window_setting s USING (purpose)
	 ORDER BY p.purpose;
COMMENT ON VIEW retention.policy IS
	'Each purpose''s retention window, legal ceiling and legal basis';

CREATE FUNCTION retention._unknown_purpose(purpose text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
	RAISE EXCEPTION 'unknown retention purpose "%"', purpose
		USING ERRCODE = 'invalid_parameter_value',
			  HINT = 'Valid purposes are billing, law_enforcement, marketing and network_security.';
END
$$;

CREATE FUNCTION retention.set_window(purpose text, "window" interval)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
SET intervalstyle = postgres
AS $$
DECLARE
	p		retention.purpose%ROWTYPE;
	old		interval;
BEGIN
	SELECT * INTO p FROM retention.purpose WHERE retention.purpose.purpose = set_window.purpose;
	IF NOT FOUND THEN
		PERFORM retention._unknown_purpose(set_window.purpose);
	END IF;
	IF p.ceiling IS NULL THEN
		RAISE EXCEPTION 'purpose "%" has no fixed window', p.purpose
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'Marketing data are kept only under the subscriber''s express consent, for the consent''s own duration.',
				  HINT = format('See %s; use retention.grant_consent().', p.legal_basis);
	END IF;
	IF set_window."window" IS NULL THEN
		RAISE EXCEPTION 'retention window must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF set_window."window" < interval '0' THEN
		RAISE EXCEPTION 'retention window must not be negative'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('The window given was %s.', set_window."window");
	END IF;
	IF set_window."window" > p.ceiling THEN
		RAISE EXCEPTION 'retention window % for purpose "%" exceeds its legal ceiling of %',
				set_window."window", p.purpose, p.ceiling
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = format('%s allows keeping %s data at most %s.', p.legal_basis,
								replace(p.purpose, '_', ' '), p.ceiling);
	END IF;

	SELECT pol."window" INTO old FROM retention.policy pol WHERE pol.purpose = p.purpose;
	INSERT INTO retention.window_setting AS s (purpose, "window")
		VALUES (p.purpose, set_window."window")
		ON CONFLICT ON CONSTRAINT window_setting_pkey
		DO UPDATE SET "window" = excluded."window", set_at = now(), set_by = session_user;
	PERFORM retention._audit('set_window', p.purpose,
							 jsonb_build_object('old', old::text, 'new', set_window."window"::text));
END
$$;
COMMENT ON FUNCTION retention.set_window(text, interval) IS
	'Change a purpose''s retention window, within its legal ceiling (audited)';

--------------------------------------------------------------------------
-- Purpose-tagged identifier types (SPEC 3.2)
--
-- Stored like text, with an implicit binary-coercible cast to text: every
-- text operator, function, index (text_ops), join and GROUP BY applies at
-- text speed.  Values come in only through validation: the input and
-- receive functions and the assignment casts from text, varchar and char.
-- The type modifier is the set of purposes (typmod.c).
--------------------------------------------------------------------------

CREATE FUNCTION retention.purposes_in(cstring[])
RETURNS integer
AS 'MODULE_PATHNAME', 'retention_purposes_in'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION retention.purposes_out(integer)
RETURNS cstring
AS 'MODULE_PATHNAME', 'retention_purposes_out'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

DO $types$
DECLARE
	t	text;
BEGIN
	FOREACH t IN ARRAY ARRAY['msisdn', 'imsi', 'imei', 'cell', 'ident'] LOOP
		EXECUTE format($f$
			CREATE TYPE retention.%1$I;

			CREATE FUNCTION retention.%2$I(cstring, oid, integer)
			RETURNS retention.%1$I
			AS 'MODULE_PATHNAME', 'retention_%1$s_in'
			LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

			CREATE FUNCTION retention.%3$I(retention.%1$I)
			RETURNS cstring AS 'textout'
			LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;

			CREATE FUNCTION retention.%4$I(internal, oid, integer)
			RETURNS retention.%1$I
			AS 'MODULE_PATHNAME', 'retention_%1$s_recv'
			LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

			CREATE FUNCTION retention.%5$I(retention.%1$I)
			RETURNS bytea AS 'textsend'
			LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;

			CREATE TYPE retention.%1$I (
				INPUT = retention.%2$I,
				OUTPUT = retention.%3$I,
				RECEIVE = retention.%4$I,
				SEND = retention.%5$I,
				TYPMOD_IN = retention.purposes_in,
				TYPMOD_OUT = retention.purposes_out,
				INTERNALLENGTH = VARIABLE,
				STORAGE = extended,
				ALIGNMENT = int4,
				CATEGORY = 'S',
				COLLATABLE = true
			);

			CREATE CAST (retention.%1$I AS text) WITHOUT FUNCTION AS IMPLICIT;
			CREATE CAST (retention.%1$I AS varchar) WITHOUT FUNCTION AS ASSIGNMENT;

			CREATE FUNCTION retention.%1$I(bpchar)
			RETURNS retention.%1$I
			AS 'MODULE_PATHNAME', 'retention_%1$s_from_bpchar'
			LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
			CREATE CAST (bpchar AS retention.%1$I)
				WITH FUNCTION retention.%1$I(bpchar) AS ASSIGNMENT;
			$f$, t, t || '_in', t || '_out', t || '_recv', t || '_send');

		IF t = 'ident' THEN
			-- anything is an identifier: no validation, hence no rewrite when
			-- a text or varchar column becomes an ident
			EXECUTE $f$
				CREATE CAST (text AS retention.ident) WITHOUT FUNCTION AS ASSIGNMENT;
				CREATE CAST (varchar AS retention.ident) WITHOUT FUNCTION AS ASSIGNMENT;
				$f$;
		ELSE
			EXECUTE format($f$
				CREATE FUNCTION retention.%1$I(text)
				RETURNS retention.%1$I
				AS 'MODULE_PATHNAME', 'retention_%1$s_from_text'
				LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
				CREATE CAST (text AS retention.%1$I)
					WITH FUNCTION retention.%1$I(text) AS ASSIGNMENT;
				CREATE CAST (varchar AS retention.%1$I)
					WITH FUNCTION retention.%1$I(text) AS ASSIGNMENT;
				$f$, t);
		END IF;
	END LOOP;
END
$types$;

COMMENT ON TYPE retention.msisdn IS 'E.164 subscriber number, digits only; modifier: purposes';
COMMENT ON TYPE retention.imsi IS 'International mobile subscriber identity (14-15 digits); modifier: purposes';
COMMENT ON TYPE retention.imei IS 'Device identity: 15-digit IMEI (Luhn) or 16-digit IMEISV; modifier: purposes';
COMMENT ON TYPE retention.cell IS 'Cell global identity MCC-MNC-AREA-CELL (CGI, ECGI, NCGI); modifier: purposes';
COMMENT ON TYPE retention.ident IS 'Any other identifier (SIP URI, IP address, account); modifier: purposes';

--------------------------------------------------------------------------
-- Anonymization and keys (SPEC 3.7)
--------------------------------------------------------------------------

--------------------------------------------------------------------------
-- Protected tables, deadlines and expiry triggers (SPEC 2, 3.3)
--------------------------------------------------------------------------

--------------------------------------------------------------------------
-- Privileges: ordinary roles read the policy; only retention_admin (and
-- superusers) change it or read the audit log.
--------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA retention FROM PUBLIC;
GRANT SELECT ON retention.policy, retention.purpose, retention.window_setting TO PUBLIC;
GRANT SELECT ON retention.audit_log TO retention_admin;
REVOKE ALL ON FUNCTION retention._audit(text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION retention.set_window(text, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.set_window(text, interval) TO retention_admin;
REVOKE ALL ON FUNCTION retention.verify_audit_log() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.verify_audit_log() TO retention_admin;
