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
ALTER EVENT TRIGGER retention_exposures_before_alter ENABLE;
ALTER EVENT TRIGGER retention_exposures_after_alter ENABLE;
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
