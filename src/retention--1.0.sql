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

-- the protected tables: dumped, so protection survives a restore
CREATE TABLE retention.protected_table (
	relid			regclass PRIMARY KEY,
	ended_at		name NOT NULL,
	subscriber		name,
	on_expiry		text NOT NULL CHECK (on_expiry IN ('delete', 'anonymize')),
	billing_anchor	name,
	protected_at	timestamptz NOT NULL DEFAULT now(),
	protected_by	name NOT NULL DEFAULT session_user,
	columns			jsonb NOT NULL DEFAULT '{}'		-- tagged column -> purposes, as agreed
);
SELECT pg_catalog.pg_extension_config_dump('retention.protected_table', '');
CREATE TRIGGER protected_table_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON retention.protected_table
	FOR EACH STATEMENT EXECUTE FUNCTION retention._catalog_changed();

-- each tagged column's method at its deadline, where not the default erase
CREATE TABLE retention.column_method (
	relid		regclass NOT NULL REFERENCES retention.protected_table ON DELETE CASCADE,
	attname		name NOT NULL,
	method		text NOT NULL CHECK (method IN ('erase', 'generalize', 'hash')),
	PRIMARY KEY (relid, attname)
);
SELECT pg_catalog.pg_extension_config_dump('retention.column_method', '');
CREATE TRIGGER column_method_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON retention.column_method
	FOR EACH STATEMENT EXECUTE FUNCTION retention._catalog_changed();

-- rows changed as they were written because something was already due:
-- never dropped without trace (written by the triggers, in C)
CREATE TABLE retention.write_log (
	at			timestamptz NOT NULL,
	relid		regclass NOT NULL,
	action		text NOT NULL,		-- 'deleted', 'anonymized' or 'failed'
	rows		integer NOT NULL,
	error		text
);
COMMENT ON TABLE retention.write_log IS
	'Rows deleted or anonymized by the expiry triggers as they were written';

-- the trigger functions and the prefilter of the after-write trigger
CREATE FUNCTION retention._expire_before()
RETURNS trigger
AS 'MODULE_PATHNAME', 'retention_expire_before'
LANGUAGE C;

CREATE FUNCTION retention._expire_after()
RETURNS trigger
AS 'MODULE_PATHNAME', 'retention_expire_after'
LANGUAGE C;

CREATE FUNCTION retention._due_at_write(tableoid oid, ended_at "any")
RETURNS boolean
AS 'MODULE_PATHNAME', 'retention_due_at_write'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION retention._due_at_write(tableoid oid, ended_at "any", billing_anchor "any")
RETURNS boolean
AS 'MODULE_PATHNAME', 'retention_due_at_write'
LANGUAGE C STABLE PARALLEL SAFE;

-- what the C module knows of a table: its tagged columns, purposes, methods
CREATE FUNCTION retention.tagged_columns(tbl regclass,
	OUT attname name, OUT type regtype, OUT purposes text[], OUT method text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'retention_tagged_columns'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION retention.tagged_columns(regclass) IS
	'The purpose-tagged columns of a table, with their purposes and method';

-- the column of tbl called col, or an error naming what is wrong
CREATE FUNCTION retention._column(tbl regclass, col name, what text)
RETURNS pg_catalog.pg_attribute
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, retention
AS $$
DECLARE
	a	pg_attribute;
BEGIN
	SELECT * INTO a FROM pg_attribute
	 WHERE attrelid = tbl AND attname = col AND attnum > 0 AND NOT attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of relation % does not exist', col, tbl
			USING ERRCODE = 'undefined_column',
				  HINT = format('The %s column must be a column of the table.', what);
	END IF;
	RETURN a;
END
$$;

CREATE FUNCTION retention._is_protected(tbl regclass)
RETURNS regclass
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention
AS $$
	SELECT p.relid FROM retention.protected_table p
	 WHERE p.relid = tbl
		OR p.relid IN (SELECT relid FROM pg_partition_ancestors(tbl))
	 LIMIT 1
$$;

-- (re)create the expiry triggers of a protected table
CREATE FUNCTION retention._create_triggers(tbl regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, retention
SET client_min_messages = warning
AS $$
DECLARE
	p			retention.protected_table;
	in_place	boolean;
	prefilter	text;
	after_on	text;
BEGIN
	SELECT * INTO STRICT p FROM retention.protected_table WHERE relid = tbl;
	-- a column that can fall due when the call ends (kept for no purpose, or
	-- for marketing only) needs every completed row changed as it is written:
	-- then the row is changed in place, before it is stored.  Otherwise only
	-- late rows have anything due, and an AFTER trigger filtered by WHEN
	-- leaves COPY's multi-row inserts on.
	SELECT bool_or(c.purposes <@ ARRAY['marketing']) INTO in_place
	  FROM retention.tagged_columns(tbl) c;
	prefilter := CASE WHEN p.billing_anchor IS NULL
					  THEN format('retention._due_at_write(NEW.tableoid, NEW.%I)', p.ended_at)
					  ELSE format('retention._due_at_write(NEW.tableoid, NEW.%I, NEW.%I)',
								  p.ended_at, p.billing_anchor) END;
	-- The AFTER trigger deletes a row left with nothing personal (on_expiry
	-- 'delete') and anonymizes a late row just inserted.  In a table that
	-- keeps rows anonymized an UPDATE leaves it nothing to do (every sweep
	-- batch is one): there it fires on INSERT only, and not at all when the
	-- BEFORE trigger takes the inserts.
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
END
$$;

-- the tagged columns of tbl and their purposes, as jsonb
CREATE FUNCTION retention._tags(tbl regclass)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention
AS $$
	SELECT coalesce(jsonb_object_agg(t.attname, t.purposes), '{}')
	  FROM retention.tagged_columns(tbl) t
$$;

CREATE FUNCTION retention.protect(tbl regclass, ended_at name,
								  subscriber name DEFAULT NULL,
								  on_expiry text DEFAULT 'delete',
								  billing_anchor name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
AS $$
DECLARE
	rel			pg_class;
	a			pg_attribute;
	c			record;
	ntagged		integer;
	protector	regclass;
BEGIN
	SELECT * INTO rel FROM pg_class WHERE oid = tbl;
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
				WHERE tbl IN (SELECT relid FROM pg_partition_ancestors(pt.relid))) THEN
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
	-- an erased value is NULL: a tagged column must accept it
	FOR c IN SELECT t.attname FROM retention.tagged_columns(tbl) t
			   JOIN pg_attribute pa ON pa.attrelid = tbl AND pa.attname = t.attname
			  WHERE pa.attnotnull LOOP
		RAISE EXCEPTION 'purpose-tagged column "%" of relation % is NOT NULL', c.attname, tbl
			USING ERRCODE = 'invalid_table_definition',
				  DETAIL = 'An erased value is NULL.',
				  HINT = format('Drop the constraint: ALTER TABLE %s ALTER COLUMN %I DROP NOT NULL.', tbl, c.attname);
	END LOOP;

	INSERT INTO retention.protected_table (relid, ended_at, subscriber, on_expiry, billing_anchor, columns)
		VALUES (tbl, protect.ended_at, protect.subscriber, protect.on_expiry, protect.billing_anchor,
				retention._tags(tbl));
	PERFORM retention._create_triggers(tbl);
	PERFORM retention._audit('protect', tbl::text,
							 jsonb_build_object('ended_at', ended_at, 'subscriber', subscriber,
												'on_expiry', on_expiry, 'billing_anchor', billing_anchor,
												'columns', retention._tags(tbl)));
END
$$;
COMMENT ON FUNCTION retention.protect(regclass, name, name, text, name) IS
	'Put a table under retention: expiry triggers now, sweeps later (audited)';

CREATE FUNCTION retention.unprotect(tbl regclass)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
SET client_min_messages = warning
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM retention.protected_table WHERE relid = tbl) THEN
		RAISE EXCEPTION 'table % is not protected', tbl
			USING ERRCODE = 'undefined_object';
	END IF;
	EXECUTE format('DROP TRIGGER IF EXISTS retention_expire_before ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS retention_expire_after ON %s', tbl);
	DELETE FROM retention.protected_table WHERE relid = tbl;
	PERFORM retention._audit('unprotect', tbl::text);
END
$$;
COMMENT ON FUNCTION retention.unprotect(regclass) IS
	'Take a table out of retention: its triggers go, its data stay (audited)';

CREATE FUNCTION retention.set_method(tbl regclass, "column" name, method text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
AS $$
DECLARE
	t		record;
	a		pg_attribute;
	old		text;
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
	IF method = 'generalize' AND t.type = 'retention.ident'::regtype THEN
		RAISE EXCEPTION 'type retention.ident cannot be generalized'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'An identifier has no coarser form: use erase or hash.';
	END IF;
	IF method <> 'erase' AND EXISTS (
			SELECT 1 FROM pg_constraint con
			 WHERE con.conrelid = tbl AND con.contype IN ('f', 'c') AND a.attnum = ANY (con.conkey)) THEN
		RAISE EXCEPTION 'column "%" of relation % is constrained', "column", tbl
			USING ERRCODE = 'invalid_table_definition',
				  DETAIL = format('A %s value may violate its foreign key or check constraint, and writers must never fail.', method),
				  HINT = 'Use erase, or drop the constraint.';
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
COMMENT ON FUNCTION retention.set_method(regclass, name, text) IS
	'Choose what happens to a tagged column at its deadline: erase, generalize or hash (audited)';

CREATE FUNCTION retention._anonymize_subscriber(tbl regclass, subscriber text, everything boolean,
	OUT rows_anonymized bigint, OUT rows_deleted bigint, OUT rows_held bigint)
AS 'MODULE_PATHNAME', 'retention_anonymize_subscriber'
LANGUAGE C STRICT;

-- a subscriber as stored in tbl's subscriber column (normalized by its type)
CREATE FUNCTION retention._subscriber_value(tbl regclass, subscriber text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, retention
AS $$
DECLARE
	p		retention.protected_table;
	typ		regtype;
	v		text;
BEGIN
	SELECT * INTO p FROM retention.protected_table WHERE relid = tbl;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table % is not protected', tbl
			USING ERRCODE = 'undefined_object';
	END IF;
	IF p.subscriber IS NULL THEN
		RAISE EXCEPTION 'table % has no subscriber column', tbl
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Protect it with retention.protect(..., subscriber => ''column'').';
	END IF;
	SELECT t.type INTO typ FROM retention.tagged_columns(tbl) t WHERE t.attname = p.subscriber;
	EXECUTE format('SELECT $1::%s::text', typ) INTO v USING subscriber;
	RETURN v;
END
$$;

CREATE FUNCTION retention.anonymize(tbl regclass, subscriber text,
	OUT rows_anonymized bigint, OUT rows_deleted bigint, OUT rows_held bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
AS $$
DECLARE
	v		text := retention._subscriber_value(tbl, subscriber);
BEGIN
	-- a hold being placed on this table finishes first
	PERFORM pg_advisory_xact_lock_shared((x'52455448'::bigint << 32) | tbl::oid::bigint);
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
COMMENT ON FUNCTION retention.anonymize(regclass, text) IS
	'Anonymize now everything of one subscriber in a protected table, holds excepted (audited)';

--------------------------------------------------------------------------
-- Sweep (SPEC 3.8)
--------------------------------------------------------------------------

-- a row per table per run, written before the work starts: a run that
-- crashed stays 'running' until the next run marks it 'interrupted'
CREATE TABLE retention.sweep_log (
	id				bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	run_id			bigint NOT NULL,
	relid			regclass NOT NULL,
	started_at		timestamptz NOT NULL,
	finished_at		timestamptz,
	cutoff			timestamptz NOT NULL,
	status			text NOT NULL
		CHECK (status IN ('running', 'done', 'failed', 'interrupted', 'skipped')),
	phase			text,
	rows_estimate	bigint,
	rows_scanned	bigint NOT NULL DEFAULT 0,
	rows_anonymized	bigint NOT NULL DEFAULT 0,
	rows_deleted	bigint NOT NULL DEFAULT 0,
	rows_held		bigint NOT NULL DEFAULT 0,
	rows_skipped	bigint NOT NULL DEFAULT 0,
	partitions_truncated integer NOT NULL DEFAULT 0,
	-- time spent pausing (retention.batch_delay, retention.max_wal_rate)
	paused			interval NOT NULL DEFAULT '0',
	vacuumed_at		timestamptz,
	run_by			text NOT NULL,
	error			text
);
CREATE INDEX sweep_log_relid ON retention.sweep_log (relid, started_at);
CREATE SEQUENCE retention.sweep_run_seq;
SELECT pg_catalog.pg_extension_config_dump('retention.sweep_log', '');
SELECT pg_catalog.pg_extension_config_dump('retention.sweep_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('retention.sweep_run_seq', '');
COMMENT ON TABLE retention.sweep_log IS
	'One row per protected table per sweep: what was anonymized, deleted, held and skipped';

-- what each sweep is doing now, from any session
CREATE VIEW retention.sweep_progress AS
	SELECT l.relid AS "table", l.phase, l.rows_scanned AS rows_done, l.rows_estimate,
		   round(100.0 * l.rows_scanned / nullif(l.rows_estimate, 0), 1) AS percent,
		   round(l.rows_scanned / nullif(extract(epoch FROM clock_timestamp() - l.started_at), 0))
			   AS rows_per_second,
		   l.rows_anonymized, l.rows_deleted, l.rows_held, l.rows_skipped, l.paused,
		   l.started_at, l.run_by, l.run_id
	  FROM retention.sweep_log l
	 WHERE l.status = 'running'
	   -- alive: its session still holds the table's sweep lock (sweep.c)
	   AND EXISTS (SELECT 1 FROM pg_catalog.pg_locks k
					WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 1
					  AND k.classid = x'52455445'::bigint::oid AND k.objid = l.relid::oid);
COMMENT ON VIEW retention.sweep_progress IS
	'Sweeps running now: table, phase, rows done of the estimate, rate';

-- a row's state for the sweep: 0 nothing to do, 1 anonymize, 2 delete,
-- 3 held back (would be due but for a hold)
CREATE FUNCTION retention._sweep_row(tableoid oid, ended_at "any", billing_anchor "any",
									 consent boolean, hold integer, VARIADIC "any")
RETURNS integer
AS 'MODULE_PATHNAME', 'retention_sweep_row'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE PROCEDURE retention.sweep(tbl regclass DEFAULT NULL,
								 batch_size integer DEFAULT NULL,
								 dry_run boolean DEFAULT false)
AS 'MODULE_PATHNAME', 'retention_sweep'
LANGUAGE C;
COMMENT ON PROCEDURE retention.sweep(regclass, integer, boolean) IS
	'Apply everything due in every protected table (or one), batch by batch';

--------------------------------------------------------------------------
-- Background worker (SPEC 3.9)
--
-- The per-database sweeper (worker.c) asks two questions of a database:
-- which tables a scheduled sweep is for, and which tables to vacuum after
-- the sweeps that changed them.  They are SQL so that a DBA can ask too.
--------------------------------------------------------------------------

-- the sweeps whose changes no VACUUM has removed yet (a few rows at most)
CREATE INDEX sweep_log_unvacuumed ON retention.sweep_log (relid)
	WHERE vacuumed_at IS NULL AND (rows_anonymized > 0 OR rows_deleted > 0);

-- the protected tables a sweep scheduled at since is for: those that no
-- sweep run to its end (done, or failed on an error of its own) has started
-- on since then, and those whose last sweep was cut short (a crash, a
-- shutdown, a cancel: status running or interrupted), whenever it started
CREATE FUNCTION retention._sweep_due(since timestamptz)
RETURNS SETOF regclass
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention
AS $$
	SELECT p.relid
	  FROM retention.protected_table p
	 WHERE NOT EXISTS (SELECT 1 FROM retention.sweep_log l
						WHERE l.relid = p.relid AND l.started_at >= since
						  AND l.status IN ('done', 'failed'))
		OR (SELECT l.status FROM retention.sweep_log l
			 WHERE l.relid = p.relid AND l.status <> 'skipped'
			 ORDER BY l.started_at DESC, l.id DESC LIMIT 1) IN ('running', 'interrupted')
	 ORDER BY p.relid::oid
$$;
COMMENT ON FUNCTION retention._sweep_due(timestamptz) IS
	'Protected tables not swept to the end since the given instant, or whose last sweep was cut short';

-- tables whose finished sweeps removed or changed rows that no VACUUM has
-- removed since, with the newest such sweep_log row
CREATE FUNCTION retention._vacuum_pending(OUT relid regclass, OUT last_log_id bigint)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention
AS $$
	SELECT l.relid, max(l.id)
	  FROM retention.sweep_log l
	 WHERE l.vacuumed_at IS NULL AND (l.rows_anonymized > 0 OR l.rows_deleted > 0)
	   AND l.status <> 'running'
	   AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = l.relid)
	 GROUP BY l.relid
	 ORDER BY l.relid::oid
$$;
COMMENT ON FUNCTION retention._vacuum_pending() IS
	'Tables to vacuum because sweeps changed them since their last vacuum';

-- record that tbl was vacuumed after its sweeps up to sweep_log row last_log_id
CREATE FUNCTION retention._vacuumed(tbl regclass, last_log_id bigint)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, retention
AS $$
	UPDATE retention.sweep_log SET vacuumed_at = clock_timestamp()
	 WHERE relid = tbl AND id <= last_log_id
	   AND vacuumed_at IS NULL AND status <> 'running'
$$;

REVOKE ALL ON FUNCTION retention._sweep_due(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention._sweep_due(timestamptz) TO retention_admin;
REVOKE ALL ON FUNCTION retention._vacuum_pending() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention._vacuum_pending() TO retention_admin;
REVOKE ALL ON FUNCTION retention._vacuumed(regclass, bigint) FROM PUBLIC;

--------------------------------------------------------------------------
-- Holds and consent (SPEC 3.5, 3.6)
--------------------------------------------------------------------------

-- holds placed on a protected table's rows: dumped
CREATE TABLE retention.hold (
	id				bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	relid			regclass NOT NULL,
	subscriber		text NOT NULL,
	from_ts			timestamptz NOT NULL,
	to_ts			timestamptz NOT NULL,
	reason			text NOT NULL
		CHECK (reason IN ('billing_dispute', 'judicial_request', 'quick_freeze')),
	reference		text NOT NULL,
	until			timestamptz,
	placed_at		timestamptz NOT NULL DEFAULT now(),
	placed_by		name NOT NULL DEFAULT session_user,
	released_at		timestamptz,
	released_by		name,
	release_note	text,
	CHECK (from_ts <= to_ts)
);
CREATE INDEX hold_active ON retention.hold (relid, subscriber) WHERE released_at IS NULL;
SELECT pg_catalog.pg_extension_config_dump('retention.hold', '');
SELECT pg_catalog.pg_extension_config_dump('retention.hold_id_seq', '');

-- marketing consents, one per subscriber: dumped
CREATE TABLE retention.consent (
	subscriber		text PRIMARY KEY,
	valid_until		timestamptz NOT NULL,
	contract_end	timestamptz NOT NULL,
	granted_at		timestamptz NOT NULL DEFAULT now(),
	granted_by		name NOT NULL DEFAULT session_user,
	withdrawn_at	timestamptz
);
SELECT pg_catalog.pg_extension_config_dump('retention.consent', '');

CREATE FUNCTION retention.hold(tbl regclass, subscriber text, from_ts timestamptz,
							   to_ts timestamptz, reason text, reference text,
							   until timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
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
	-- out until the hold is committed: see HOLD_LOCK_PREFIX in sweep.c
	PERFORM pg_advisory_xact_lock((x'52455448'::bigint << 32) | tbl::oid::bigint);
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
COMMENT ON FUNCTION retention.hold(regclass, text, timestamptz, timestamptz, text, text, timestamptz) IS
	'Keep a subscriber''s rows from erasure for a dispute or a judicial request (audited)';

CREATE FUNCTION retention.release(hold_id bigint, note text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
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
				  DETAIL = format('%s released it, with note: %s', h.released_by, coalesce(h.release_note, '(none)'));
	END IF;
	UPDATE retention.hold SET released_at = now(), released_by = session_user, release_note = note
	 WHERE id = hold_id;
	PERFORM retention._audit('release', h.relid::text,
							 jsonb_build_object('hold', hold_id, 'reference', h.reference, 'note', note));
END
$$;
COMMENT ON FUNCTION retention.release(bigint, text) IS
	'End a hold: its rows fall due again (audited)';

-- a subscriber as consents know it: an MSISDN normalized, anything else as is
CREATE FUNCTION retention._consent_subscriber(subscriber text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, retention
AS $$
BEGIN
	RETURN subscriber::retention.msisdn::text;
EXCEPTION WHEN invalid_text_representation THEN
	RETURN subscriber;
END
$$;

CREATE FUNCTION retention.grant_consent(subscriber text, valid_until timestamptz,
										contract_end timestamptz)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
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
				  HINT = 'CPCE L34-1 III ¶2 allows marketing use only with express consent "pour une durée déterminée".';
	END IF;
	IF contract_end IS NULL OR valid_until > contract_end THEN
		RAISE EXCEPTION 'a marketing consent cannot outlast the contract'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('valid_until is %s, the contract ends %s.', valid_until, contract_end),
				  HINT = 'CPCE L34-1 III ¶2: the duration can in no case exceed the contractual relationship.';
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
COMMENT ON FUNCTION retention.grant_consent(text, timestamptz, timestamptz) IS
	'Record a subscriber''s express, time-limited consent to marketing use (audited)';

CREATE FUNCTION retention.withdraw_consent(subscriber text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
AS $$
DECLARE
	v		text := retention._consent_subscriber(subscriber);
	p		record;
	n		bigint := 0;
	changed	bigint;
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
							 WHERE 'marketing' = ANY (t.purposes)) LOOP
		SELECT a.rows_anonymized + a.rows_deleted INTO changed
		  FROM retention._anonymize_subscriber(p.relid, retention._subscriber_value(p.relid, v), false) a;
		n := n + changed;
	END LOOP;
	PERFORM retention._audit('withdraw_consent', NULL, jsonb_build_object('rows_changed', n));
END
$$;
COMMENT ON FUNCTION retention.withdraw_consent(text) IS
	'Withdraw a marketing consent: what was kept for marketing only goes at once (audited)';

--------------------------------------------------------------------------
-- Purpose-bound access (SPEC 3.10)
--------------------------------------------------------------------------

CREATE TABLE retention.exposure (
	relid		regclass NOT NULL REFERENCES retention.protected_table ON DELETE CASCADE,
	purpose		text NOT NULL REFERENCES retention.purpose,
	role		name NOT NULL,
	view_name	name NOT NULL,
	exposed_at	timestamptz NOT NULL DEFAULT now(),
	exposed_by	name NOT NULL DEFAULT session_user,
	PRIMARY KEY (relid, purpose, role)
);
SELECT pg_catalog.pg_extension_config_dump('retention.exposure', '');

-- the view's definition: the purpose's columns and the non-personal ones,
-- the rows whose window for the purpose is open
CREATE FUNCTION retention._exposure_sql(tbl regclass, purpose text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, retention
AS $$
DECLARE
	p		retention.protected_table;
	cols	text;
	cond	text;
BEGIN
	SELECT * INTO STRICT p FROM retention.protected_table WHERE relid = tbl;
	SELECT string_agg(format('x.%I', a.attname), ', ' ORDER BY a.attnum) INTO cols
	  FROM pg_attribute a
	 WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped
	   AND (NOT EXISTS (SELECT 1 FROM retention.tagged_columns(tbl) t WHERE t.attname = a.attname)
			OR EXISTS (SELECT 1 FROM retention.tagged_columns(tbl) t
						WHERE t.attname = a.attname AND purpose = ANY (t.purposes)));
	IF purpose = 'marketing' THEN
		cond := CASE WHEN p.subscriber IS NULL THEN 'false' ELSE format(
			'EXISTS (SELECT 1 FROM retention.consent c WHERE c.subscriber = x.%I::text '
			'AND c.withdrawn_at IS NULL AND least(c.valid_until, c.contract_end) > now())',
			p.subscriber) END;
	ELSE
		cond := format('(x.%I IS NULL OR %s > now() - (SELECT least(pol."window", pol.ceiling) '
					   'FROM retention.policy pol WHERE pol.purpose = %L))',
					   p.ended_at,
					   CASE WHEN purpose = 'billing' AND p.billing_anchor IS NOT NULL
							THEN format('coalesce(x.%I, x.%I)', p.billing_anchor, p.ended_at)
							ELSE format('x.%I', p.ended_at) END,
					   purpose);
		-- rows a hold keeps for this purpose: disputes for billing, orders
		-- for law enforcement
		IF p.subscriber IS NOT NULL AND purpose IN ('billing', 'law_enforcement') THEN
			cond := cond || format(' OR EXISTS (SELECT 1 FROM retention.hold h WHERE h.relid = %L::regclass '
								   'AND h.subscriber = x.%I::text AND h.released_at IS NULL '
								   'AND (h.until IS NULL OR h.until > now()) AND x.%I BETWEEN h.from_ts AND h.to_ts '
								   'AND h.reason %s)',
								   tbl::oid, p.subscriber, p.ended_at,
								   CASE WHEN purpose = 'billing' THEN '= ''billing_dispute'''
										ELSE 'IN (''judicial_request'', ''quick_freeze'')' END);
		END IF;
	END IF;
	RETURN format('SELECT %s FROM %s x WHERE %s', cols, tbl, cond);
END
$$;

-- (re)create the view of one exposure, owned by the table's owner
CREATE FUNCTION retention._create_exposure(tbl regclass, purpose text, role name, view_name name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, retention
AS $$
DECLARE
	nsp		name := (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
					  WHERE c.oid = tbl);
	owner	name := (SELECT pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.oid = tbl);
BEGIN
	EXECUTE format('CREATE VIEW %I.%I WITH (security_barrier) AS %s', nsp, view_name,
				   retention._exposure_sql(tbl, purpose));
	EXECUTE format('ALTER VIEW %I.%I OWNER TO %I', nsp, view_name, owner);
	IF NOT has_schema_privilege(role, nsp, 'USAGE') THEN
		EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', nsp, role);
	END IF;
	EXECUTE format('GRANT SELECT ON %I.%I TO %I', nsp, view_name, role);
END
$$;

CREATE FUNCTION retention.expose(tbl regclass, purpose text, to_role name)
RETURNS regclass
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
AS $$
DECLARE
	view_name	name;
	nsp			name;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM retention.protected_table WHERE relid = tbl) THEN
		RAISE EXCEPTION 'table % is not protected', tbl
			USING ERRCODE = 'undefined_object',
				  HINT = 'Protect it first with retention.protect().';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM retention.purpose pu WHERE pu.purpose = expose.purpose) THEN
		PERFORM retention._unknown_purpose(purpose);
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = to_role) THEN
		RAISE EXCEPTION 'role "%" does not exist', to_role
			USING ERRCODE = 'undefined_object';
	END IF;
	IF EXISTS (SELECT 1 FROM retention.exposure e
				WHERE e.relid = tbl AND e.purpose = expose.purpose AND e.role = to_role) THEN
		RAISE EXCEPTION 'table % is already exposed for % to role "%"', tbl, purpose, to_role
			USING ERRCODE = 'duplicate_object';
	END IF;
	SELECT c.relname || '_' || purpose, n.nspname INTO view_name, nsp
	  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
	IF EXISTS (SELECT 1 FROM retention.exposure e WHERE e.relid = tbl AND e.purpose = expose.purpose) THEN
		-- the view exists for another role: grant it too
		IF NOT has_schema_privilege(to_role, nsp, 'USAGE') THEN
			EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', nsp, to_role);
		END IF;
		EXECUTE format('GRANT SELECT ON %I.%I TO %I', nsp, view_name, to_role);
	ELSE
		IF to_regclass(format('%I.%I', nsp, view_name)) IS NOT NULL THEN
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
COMMENT ON FUNCTION retention.expose(regclass, text, name) IS
	'Give a role a view of a table restricted to one purpose''s columns and open rows (audited)';

CREATE FUNCTION retention.unexpose(tbl regclass, purpose text, role name)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
AS $$
DECLARE
	e		retention.exposure;
	nsp		name := (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
					  WHERE c.oid = tbl);
BEGIN
	DELETE FROM retention.exposure x
	 WHERE x.relid = tbl AND x.purpose = unexpose.purpose AND x.role = unexpose.role
	RETURNING * INTO e;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table % is not exposed for % to role "%"', tbl, purpose, role
			USING ERRCODE = 'undefined_object';
	END IF;
	IF EXISTS (SELECT 1 FROM retention.exposure x WHERE x.relid = tbl AND x.purpose = unexpose.purpose) THEN
		EXECUTE format('REVOKE SELECT ON %I.%I FROM %I', nsp, e.view_name, role);
	ELSE
		EXECUTE format('DROP VIEW IF EXISTS %I.%I', nsp, e.view_name);
	END IF;
	PERFORM retention._audit('unexpose', tbl::text,
							 jsonb_build_object('purpose', purpose, 'role', role));
END
$$;
COMMENT ON FUNCTION retention.unexpose(regclass, text, name) IS
	'Take a purpose-bound view away from a role (audited)';

-- views follow column changes: every ALTER TABLE drops the exposure views
-- first (so that columns they use can change) and recreates them after,
-- from the table as it then is; a failed ALTER rolls both back
CREATE FUNCTION retention._exposures_drop()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
AS $$
DECLARE
	e		record;
BEGIN
	FOR e IN SELECT DISTINCT x.relid, x.view_name, n.nspname
			   FROM retention.exposure x
			   JOIN pg_class c ON c.oid = x.relid JOIN pg_namespace n ON n.oid = c.relnamespace LOOP
		EXECUTE format('DROP VIEW IF EXISTS %I.%I', e.nspname, e.view_name);
	END LOOP;
END
$$;

CREATE FUNCTION retention._exposures_create()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
AS $$
DECLARE
	e		record;
	first	boolean;
	nsp		name;
BEGIN
	FOR e IN SELECT x.relid, x.purpose, x.role, x.view_name,
					row_number() OVER (PARTITION BY x.relid, x.purpose ORDER BY x.role) AS n
			   FROM retention.exposure x ORDER BY x.relid, x.purpose, x.role LOOP
		SELECT n.nspname INTO nsp FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.oid = e.relid;
		IF e.n = 1 THEN
			IF to_regclass(format('%I.%I', nsp, e.view_name)) IS NULL THEN
				PERFORM retention._create_exposure(e.relid, e.purpose, e.role, e.view_name);
			END IF;
		ELSE
			EXECUTE format('GRANT SELECT ON %I.%I TO %I', nsp, e.view_name, e.role);
		END IF;
	END LOOP;
END
$$;

CREATE EVENT TRIGGER retention_exposures_before_alter ON ddl_command_start
	WHEN TAG IN ('ALTER TABLE')
	EXECUTE FUNCTION retention._exposures_drop();
CREATE EVENT TRIGGER retention_exposures_after_alter ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE')
	EXECUTE FUNCTION retention._exposures_create();

--------------------------------------------------------------------------
-- Guarding protected tables against DDL that would weaken retention
--------------------------------------------------------------------------

-- may the role in effect change how retention applies?
CREATE FUNCTION retention._is_admin()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, retention
AS $$
	SELECT r.rolsuper OR pg_has_role(r.oid, 'retention_admin', 'MEMBER')
	  FROM pg_roles r WHERE r.rolname = retention._outer_role()
$$;

-- after ALTER TABLE on a protected table (or a partition of one): the
-- columns protect() was given still exist with their types, the expiry
-- triggers are still enabled, and what each column is kept for changed
-- only by a retention_admin (and then it is audited)
CREATE FUNCTION retention._guard_alter()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
AS $$
DECLARE
	cmd		record;
	p		retention.protected_table;
	tags	jsonb;
	k		text;
	a		pg_attribute;
BEGIN
	FOR cmd IN SELECT DISTINCT c.objid FROM pg_event_trigger_ddl_commands() c
				WHERE c.classid = 'pg_class'::regclass AND c.objid IS NOT NULL LOOP
		SELECT * INTO p FROM retention.protected_table pt
		 WHERE pt.relid = retention._is_protected(cmd.objid::regclass);
		CONTINUE WHEN NOT FOUND;
		-- the anchors of the rules
		FOR k IN SELECT unnest(ARRAY[p.ended_at, p.subscriber, p.billing_anchor]) LOOP
			CONTINUE WHEN k IS NULL;
			SELECT * INTO a FROM pg_attribute
			 WHERE attrelid = cmd.objid AND attname = k AND attnum > 0 AND NOT attisdropped;
			IF NOT FOUND OR (k IN (p.ended_at, p.billing_anchor)
							 AND a.atttypid NOT IN ('timestamptz'::regtype, 'timestamp'::regtype)) THEN
				RAISE EXCEPTION 'column "%" of % is used by retention', k, p.relid
					USING ERRCODE = 'dependent_objects_still_exist',
						  DETAIL = 'protect() was given it; retention cannot apply without it.',
						  HINT = 'Unprotect the table first (retention.unprotect), then protect it again.';
			END IF;
		END LOOP;
		-- the triggers: disabling them is unprotecting, retention_admin's call
		IF NOT retention._is_admin() AND EXISTS (
				SELECT 1 FROM pg_trigger t
				 WHERE t.tgrelid = cmd.objid AND t.tgname LIKE 'retention\_expire\_%'
				   AND t.tgenabled NOT IN ('O', 'A')) THEN
			RAISE EXCEPTION 'only retention_admin can disable retention''s triggers'
				USING ERRCODE = 'insufficient_privilege',
					  HINT = 'Use retention.unprotect() to take a table out of retention.';
		END IF;
		-- purposes: narrowing is fine for nobody but retention_admin, since
		-- any change of what a column is kept for is a change of policy
		IF cmd.objid = p.relid::oid THEN
			tags := retention._tags(p.relid);
			IF tags <> p.columns THEN
				FOR k IN SELECT jsonb_object_keys(p.columns) LOOP
					IF tags -> k IS DISTINCT FROM p.columns -> k
					   AND EXISTS (SELECT 1 FROM pg_attribute
									WHERE attrelid = p.relid AND attname = k AND NOT attisdropped)
					   AND NOT retention._is_admin() THEN
						RAISE EXCEPTION 'only retention_admin can change what column "%" of % is kept for', k, p.relid
							USING ERRCODE = 'insufficient_privilege',
								  DETAIL = format('It is kept for %s; the change makes it %s.',
												  p.columns -> k, coalesce(tags -> k, '"untagged"')),
								  HINT = 'Ask a member of retention_admin: the change is a change of policy.';
					END IF;
				END LOOP;
				UPDATE retention.protected_table SET columns = tags WHERE relid = p.relid;
				PERFORM retention._audit('retag', p.relid::text,
										 jsonb_build_object('old', p.columns, 'new', tags));
			END IF;
		END IF;
	END LOOP;
END
$$;

-- dropped: a protected table leaves the catalog, a dropped table's holds
-- are released; a protected table's triggers and its anchor columns go
-- only with it, or by unprotect()
CREATE FUNCTION retention._guard_drop()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
AS $$
DECLARE
	o		record;
	h		record;
	p		retention.protected_table;
	rel		regclass;
BEGIN
	FOR o IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
		IF o.object_type = 'table' AND o.original THEN
			DELETE FROM retention.protected_table WHERE relid::oid = o.objid RETURNING * INTO p;
			IF FOUND THEN
				PERFORM retention._audit('drop', o.object_identity);
			END IF;
			-- its rows are gone; an active hold left behind would hold the
			-- rows of the next table given the same OID
			FOR h IN UPDATE retention.hold
						SET released_at = now(), released_by = session_user,
							release_note = format('table %s dropped', o.object_identity)
					  WHERE relid::oid = o.objid AND released_at IS NULL
					 RETURNING id, reference LOOP
				PERFORM retention._audit('release', o.object_identity,
										 jsonb_build_object('hold', h.id, 'reference', h.reference,
															'note', 'table dropped'));
			END LOOP;
		ELSIF o.object_type = 'trigger' AND o.original AND o.address_names[3] LIKE 'retention\_expire\_%' THEN
			rel := to_regclass(format('%I.%I', o.address_names[1], o.address_names[2]));
			IF rel IS NOT NULL AND retention._is_protected(rel) IS NOT NULL
			   AND NOT retention._is_admin() THEN
				RAISE EXCEPTION 'only retention_admin can drop retention''s triggers'
					USING ERRCODE = 'insufficient_privilege',
						  HINT = 'Use retention.unprotect() to take a table out of retention.';
			END IF;
		ELSIF o.object_type = 'table column' AND o.original THEN
			SELECT * INTO p FROM retention.protected_table pt
			 WHERE pt.relid = retention._is_protected(o.objid::regclass);
			IF FOUND AND o.address_names[3] IN (p.ended_at, p.subscriber, p.billing_anchor) THEN
				RAISE EXCEPTION 'column "%" of % is used by retention', o.address_names[3], p.relid
					USING ERRCODE = 'dependent_objects_still_exist',
						  DETAIL = 'protect() was given it; retention cannot apply without it.',
						  HINT = 'Unprotect the table first (retention.unprotect), then protect it again.';
			END IF;
		END IF;
	END LOOP;
END
$$;

CREATE EVENT TRIGGER retention_guard_alter ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE')
	EXECUTE FUNCTION retention._guard_alter();
CREATE EVENT TRIGGER retention_guard_drop ON sql_drop
	EXECUTE FUNCTION retention._guard_drop();

--------------------------------------------------------------------------
-- Proof for the auditor (SPEC 3.11)
--------------------------------------------------------------------------

CREATE FUNCTION retention._column_states(tableoid oid, ended_at "any", billing_anchor "any",
										 consent boolean, hold integer, VARIADIC "any")
RETURNS text
AS 'MODULE_PATHNAME', 'retention_column_states'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION retention._row_args(tbl regclass)
RETURNS text
AS 'MODULE_PATHNAME', 'retention_row_args_sql'
LANGUAGE C STABLE STRICT;

CREATE FUNCTION retention._due_prefilter(tbl regclass)
RETURNS text
AS 'MODULE_PATHNAME', 'retention_due_prefilter_sql'
LANGUAGE C STABLE STRICT;

CREATE FUNCTION retention.report()
RETURNS TABLE ("table" regclass, "column" name, kind text, type regtype, purposes text[],
			   "window" interval, method text, rows_in_clear bigint, oldest_clear timestamptz,
			   overdue_rows bigint, held_rows bigint, last_sweep timestamptz, note text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
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
BEGIN
	FOR p IN SELECT * FROM retention.protected_table ORDER BY relid::text LOOP
		SELECT max(l.finished_at) INTO swept FROM retention.sweep_log l
		 WHERE l.relid = p.relid AND l.status = 'done';
		-- one scan of the table: per tagged column, its values in clear, the
		-- oldest of them, those past their deadline, those held
		SELECT count(*) INTO n FROM retention.tagged_columns(p.relid);
		SELECT string_agg(format('jsonb_build_array('
								 'count(*) FILTER (WHERE substr(s, %1$s, 1) IN (''k'', ''o'', ''h'')), '
								 'min(e) FILTER (WHERE substr(s, %1$s, 1) IN (''k'', ''o'', ''h'')), '
								 'count(*) FILTER (WHERE substr(s, %1$s, 1) = ''o''), '
								 'count(*) FILTER (WHERE substr(s, %1$s, 1) = ''h''))', k), ', ')
		  INTO aggs FROM generate_series(1, n) k;
		EXECUTE format('SELECT jsonb_build_array(%s) FROM (SELECT retention._column_states(%s) s, '
					   'x.%I::timestamptz e FROM %s x) q',
					   aggs, retention._row_args(p.relid), p.ended_at, p.relid)
		   INTO res;
		i := 0;
		FOR cols IN SELECT * FROM retention.tagged_columns(p.relid) LOOP
			"table" := p.relid;
			"column" := cols.attname;
			kind := 'tagged';
			type := cols.type;
			purposes := cols.purposes;
			SELECT max(least(pol."window", pol.ceiling)) INTO "window"
			  FROM retention.policy pol WHERE pol.purpose = ANY (cols.purposes);
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
		-- what the operator declares non-personal technical data (R6)
		FOR cols IN SELECT a.attname, a.atttypid::regtype AS type FROM pg_attribute a
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
			  FROM pg_depend d
			  JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
			  JOIN pg_class c ON c.oid = r.ev_class AND c.relkind = 'm'
			  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
			 WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = p.relid
			   AND a.attname IN (SELECT t.attname FROM retention.tagged_columns(p.relid) t)
			UNION
			-- generated columns computed from them
			SELECT format('%s.%I', p.relid, g.attname), 'generated column', a.attname
			  FROM pg_depend d
			  JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass AND ad.oid = d.objid
			  JOIN pg_attribute g ON g.attrelid = ad.adrelid AND g.attnum = ad.adnum AND g.attgenerated <> ''
			  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
			 WHERE d.refobjid = p.relid
			   AND a.attname IN (SELECT t.attname FROM retention.tagged_columns(p.relid) t)
			UNION
			-- expression indexes on them
			SELECT i.indexrelid::regclass::text, 'expression index', a.attname
			  FROM pg_index i
			  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
			  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
			 WHERE i.indrelid = p.relid AND i.indexprs IS NOT NULL AND d.refobjid = p.relid
			   AND a.attname IN (SELECT t.attname FROM retention.tagged_columns(p.relid) t)
			UNION
			-- other tables whose foreign keys copy them
			SELECT format('%s.%I', con.conrelid::regclass, fa.attname), 'foreign key copy', a.attname
			  FROM pg_constraint con
			  JOIN LATERAL unnest(con.confkey, con.conkey) AS k(ref, loc) ON true
			  JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.ref
			  JOIN pg_attribute fa ON fa.attrelid = con.conrelid AND fa.attnum = k.loc
			 WHERE con.contype = 'f' AND con.confrelid = p.relid
			   AND a.attname IN (SELECT t.attname FROM retention.tagged_columns(p.relid) t)
			ORDER BY 1
		LOOP
			"table" := p.relid; "column" := cols.attname; kind := 'copy'; type := NULL;
			purposes := NULL; "window" := NULL; method := NULL; rows_in_clear := NULL;
			oldest_clear := NULL; overdue_rows := NULL; held_rows := NULL; last_sweep := swept;
			note := format('%s %s holds values of this column that no sweep reaches', cols.how, cols.what);
			RETURN NEXT;
		END LOOP;
	END LOOP;
END
$$;
COMMENT ON FUNCTION retention.report() IS
	'Per protected table and column: purposes, window, values in clear, overdue and held rows, last sweep, and the copies a sweep does not reach';

CREATE FUNCTION retention.verify()
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, retention
AS $$
DECLARE
	p		retention.protected_table;
	n		bigint;
	total	bigint := 0;
	tables	text[] := '{}';
BEGIN
	FOR p IN SELECT * FROM retention.protected_table ORDER BY relid::text LOOP
		EXECUTE format('SELECT count(*) FROM %s x WHERE %s AND retention._sweep_row(%s) IN (1, 2)',
					   p.relid, retention._due_prefilter(p.relid), retention._row_args(p.relid))
		   INTO n;
		IF n > 0 THEN
			total := total + n;
			tables := tables || format('%s: %s rows', p.relid, n);
		END IF;
	END LOOP;
	IF total > 0 THEN
		RAISE EXCEPTION 'retention is overdue: % rows hold values past their deadline', total
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = array_to_string(tables, '; ') || '.',
				  HINT = 'Run CALL retention.sweep(), and check retention.sweep_log for errors.';
	END IF;
END
$$;
COMMENT ON FUNCTION retention.verify() IS
	'Raise if any value of a protected table is past its deadline (for monitoring)';

--------------------------------------------------------------------------
-- Privileges: ordinary roles read the policy; only retention_admin (and
-- superusers) change it or read the audit log.
--------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA retention FROM PUBLIC;
GRANT SELECT ON retention.policy, retention.purpose, retention.window_setting,
	retention.protected_table, retention.column_method TO PUBLIC;
GRANT SELECT ON retention.write_log TO retention_admin;
GRANT SELECT ON retention.sweep_log, retention.sweep_progress TO retention_admin;
GRANT SELECT ON retention.exposure TO PUBLIC;
GRANT SELECT ON retention.hold, retention.consent TO retention_admin;
REVOKE ALL ON FUNCTION retention.hold(regclass, text, timestamptz, timestamptz, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.hold(regclass, text, timestamptz, timestamptz, text, text, timestamptz) TO retention_admin;
REVOKE ALL ON FUNCTION retention.release(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.release(bigint, text) TO retention_admin;
REVOKE ALL ON FUNCTION retention.grant_consent(text, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.grant_consent(text, timestamptz, timestamptz) TO retention_admin;
REVOKE ALL ON FUNCTION retention.withdraw_consent(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.withdraw_consent(text) TO retention_admin;
REVOKE ALL ON FUNCTION retention.expose(regclass, text, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.expose(regclass, text, name) TO retention_admin;
REVOKE ALL ON FUNCTION retention.unexpose(regclass, text, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.unexpose(regclass, text, name) TO retention_admin;
REVOKE ALL ON FUNCTION retention.report() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.report() TO retention_admin;
REVOKE ALL ON FUNCTION retention.verify() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.verify() TO retention_admin;
REVOKE ALL ON PROCEDURE retention.sweep(regclass, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE retention.sweep(regclass, integer, boolean) TO retention_admin;
REVOKE ALL ON FUNCTION retention.protect(regclass, name, name, text, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.protect(regclass, name, name, text, name) TO retention_admin;
REVOKE ALL ON FUNCTION retention.unprotect(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.unprotect(regclass) TO retention_admin;
REVOKE ALL ON FUNCTION retention.set_method(regclass, name, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.set_method(regclass, name, text) TO retention_admin;
REVOKE ALL ON FUNCTION retention._anonymize_subscriber(regclass, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION retention.anonymize(regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.anonymize(regclass, text) TO retention_admin;
GRANT SELECT ON retention.audit_log TO retention_admin;
REVOKE ALL ON FUNCTION retention._audit(text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION retention.set_window(text, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.set_window(text, interval) TO retention_admin;
REVOKE ALL ON FUNCTION retention.verify_audit_log() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention.verify_audit_log() TO retention_admin;
