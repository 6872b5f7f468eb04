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
--
-- retention.anonymize(value, method) for each tagged type and for
-- timestamptz: erase, generalize or hash (anonymize.c).  Method hash is a
-- keyed HMAC-SHA-256 through pgcrypto under the current key of
-- retention.key, a table that only superusers can read: the C code reads
-- it directly, whatever the caller's privileges, and caches it per backend
-- until the table changes.  Keys are never dumped by pg_dump: export_keys()
-- and import_key() carry them over, on purpose and audited.
--------------------------------------------------------------------------

-- pseudonymization keys; the current one is the one not retired
CREATE TABLE retention.key (
	id			integer PRIMARY KEY CHECK (id BETWEEN 1 AND 999999999),
	key			bytea NOT NULL CHECK (octet_length(key) = 32),
	created_at	timestamptz NOT NULL DEFAULT now(),
	retired_at	timestamptz
);
CREATE UNIQUE INDEX key_one_current ON retention.key ((true)) WHERE retired_at IS NULL;
COMMENT ON TABLE retention.key IS
	'Keys of method hash (HMAC-SHA-256); readable by superusers only, never dumped';
REVOKE ALL ON TABLE retention.key FROM PUBLIC;
-- every backend drops its cached key when the table changes
CREATE TRIGGER key_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON retention.key
	FOR EACH STATEMENT EXECUTE FUNCTION retention._catalog_changed();

-- what an administrator may know of the keys: everything but the bytes
CREATE VIEW retention.key_info AS
	SELECT id, created_at, retired_at, retired_at IS NULL AS is_current
	  FROM retention.key
	 ORDER BY created_at, id;
COMMENT ON VIEW retention.key_info IS
	'Pseudonymization keys: id, creation, retirement; never the key itself';
REVOKE ALL ON retention.key_info FROM PUBLIC;
GRANT SELECT ON retention.key_info TO retention_admin;

-- pgcrypto's gen_random_bytes, called in C wherever pgcrypto is installed
CREATE FUNCTION retention._random_bytes(integer)
RETURNS bytea
AS 'MODULE_PATHNAME', 'retention_random_bytes'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
REVOKE ALL ON FUNCTION retention._random_bytes(integer) FROM PUBLIC;

-- add a new current key (the caller retires the previous one); its id is
-- random, 9 digits, so that the keys of two databases do not share ids
CREATE FUNCTION retention._add_key()
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, retention
AS $$
DECLARE
	b		bytea;
	new_id	integer;
BEGIN
	LOOP
		b := retention._random_bytes(4);
		new_id := 100000000 + ((get_byte(b, 0)::bigint * 16777216 + get_byte(b, 1) * 65536 +
								get_byte(b, 2) * 256 + get_byte(b, 3)) % 900000000)::integer;
		EXIT WHEN NOT EXISTS (SELECT 1 FROM retention.key k WHERE k.id = new_id);
	END LOOP;
	INSERT INTO retention.key (id, key) VALUES (new_id, retention._random_bytes(32));
	RETURN new_id;
END
$$;
REVOKE ALL ON FUNCTION retention._add_key() FROM PUBLIC;

-- the first key; not audited, since the audit log of a restored database
-- comes from its dump
SELECT retention._add_key();

CREATE FUNCTION retention.rotate_key()
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
AS $$
DECLARE
	old_id	integer;
	new_id	integer;
BEGIN
	LOCK TABLE retention.key IN SHARE ROW EXCLUSIVE MODE;
	UPDATE retention.key k SET retired_at = now() WHERE k.retired_at IS NULL
		RETURNING k.id INTO old_id;
	new_id := retention._add_key();
	PERFORM retention._audit('rotate_key', new_id::text,
							 jsonb_build_object('retired', old_id));
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION retention.rotate_key() IS
	'Make a new current pseudonymization key and retire the previous one (audited)';
REVOKE ALL ON FUNCTION retention.rotate_key() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.rotate_key() TO retention_admin;

CREATE FUNCTION retention.destroy_keys(older_than interval)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
SET intervalstyle = postgres
AS $$
DECLARE
	ids		integer[];
BEGIN
	IF older_than IS NULL THEN
		RAISE EXCEPTION 'key age must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF older_than < interval '0' THEN
		RAISE EXCEPTION 'key age must not be negative'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('The age given was %s.', older_than);
	END IF;
	LOCK TABLE retention.key IN SHARE ROW EXCLUSIVE MODE;
	WITH gone AS (
		DELETE FROM retention.key k
		 WHERE k.retired_at IS NOT NULL AND k.retired_at <= now() - older_than
		RETURNING k.id
	)
	SELECT array_agg(g.id ORDER BY g.id) INTO ids FROM gone g;
	PERFORM retention._audit('destroy_keys', NULL,
							 jsonb_build_object('older_than', older_than::text,
												'destroyed', coalesce(to_jsonb(ids), '[]'::jsonb)));
	RETURN coalesce(cardinality(ids), 0);
END
$$;
COMMENT ON FUNCTION retention.destroy_keys(interval) IS
	'Destroy the keys retired at least older_than ago, never the current one (audited)';
REVOKE ALL ON FUNCTION retention.destroy_keys(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.destroy_keys(interval) TO retention_admin;

-- carry keys over a dump and restore: see README, "Keys and pg_dump"
CREATE FUNCTION retention.export_keys()
RETURNS TABLE (id integer, key bytea, created_at timestamptz, retired_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
AS $$
BEGIN
	PERFORM retention._audit('export_keys', NULL,
							 jsonb_build_object('keys', (SELECT coalesce(jsonb_agg(k.id ORDER BY k.id), '[]'::jsonb)
														   FROM retention.key k)));
	RETURN QUERY
		SELECT k.id, k.key, k.created_at, k.retired_at FROM retention.key k ORDER BY k.created_at, k.id;
END
$$;
COMMENT ON FUNCTION retention.export_keys() IS
	'Every pseudonymization key, bytes included, for import_key() after a restore (audited)';
REVOKE ALL ON FUNCTION retention.export_keys() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.export_keys() TO retention_admin;

-- Add one exported key; true if added, false if already there.  Every
-- check comes before the INSERT, whose constraint errors would quote the
-- row, key included.
CREATE FUNCTION retention.import_key(id integer, key bytea, created_at timestamptz,
									 retired_at timestamptz)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
AS $$
DECLARE
	same	boolean;
BEGIN
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
	'Add a key exported by retention.export_keys() from another database (audited)';
REVOKE ALL ON FUNCTION retention.import_key(integer, bytea, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.import_key(integer, bytea, timestamptz, timestamptz) TO retention_admin;

-- Value level.  Not STRICT: a bad or NULL method is an error even on a NULL
-- value.  erase and generalize are for everyone; hash is refused (42501) to
-- roles that are neither superusers nor retention_admin members, since it
-- would compute any subscriber's pseudonym.
CREATE FUNCTION retention.anonymize(value retention.msisdn, method text)
RETURNS retention.msisdn
AS 'MODULE_PATHNAME', 'retention_anonymize_msisdn'
LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION retention.anonymize(value retention.imsi, method text)
RETURNS retention.imsi
AS 'MODULE_PATHNAME', 'retention_anonymize_imsi'
LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION retention.anonymize(value retention.imei, method text)
RETURNS retention.imei
AS 'MODULE_PATHNAME', 'retention_anonymize_imei'
LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION retention.anonymize(value retention.cell, method text)
RETURNS retention.cell
AS 'MODULE_PATHNAME', 'retention_anonymize_cell'
LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION retention.anonymize(value retention.ident, method text)
RETURNS retention.ident
AS 'MODULE_PATHNAME', 'retention_anonymize_ident'
LANGUAGE C STABLE PARALLEL SAFE;
-- generalize truncates to the hour on the UTC epoch, whatever TimeZone says
CREATE FUNCTION retention.anonymize(value timestamptz, method text)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'retention_anonymize_timestamptz'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION retention.anonymize(retention.msisdn, text) IS
	'erase, generalize (country code and operator prefix) or hash (keyed pseudonym) an MSISDN';
COMMENT ON FUNCTION retention.anonymize(retention.imsi, text) IS
	'erase, generalize (MCC+MNC) or hash (keyed pseudonym) an IMSI';
COMMENT ON FUNCTION retention.anonymize(retention.imei, text) IS
	'erase, generalize (TAC) or hash (keyed pseudonym) an IMEI';
COMMENT ON FUNCTION retention.anonymize(retention.cell, text) IS
	'erase, generalize (MCC-MNC-AREA) or hash (keyed pseudonym) a cell identity';
COMMENT ON FUNCTION retention.anonymize(retention.ident, text) IS
	'erase or hash (keyed pseudonym) an identifier';
COMMENT ON FUNCTION retention.anonymize(timestamptz, text) IS
	'erase, or generalize (truncate to the hour, UTC) a timestamp';

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
