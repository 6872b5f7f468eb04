-- debian/tests/smoke.sql: the installed package works.  Run by `make
-- test-deb` (test/deb/run) and by the autopkgtest debian/tests/smoke, with
-- psql -v ON_ERROR_STOP=1 -v version=<default_version of retention.control>
-- in a fresh database of a fresh cluster.  Every check raises on failure.

\set VERBOSITY verbose
SET smoke.version = :'version';

CREATE EXTENSION retention CASCADE;

-- the packaged control file's default version, and pgcrypto came along
DO $$
DECLARE
	v text;
BEGIN
	SELECT extversion INTO v FROM pg_catalog.pg_extension WHERE extname = 'retention';
	IF v IS DISTINCT FROM current_setting('smoke.version') THEN
		RAISE EXCEPTION 'retention is version %, expected %', v, current_setting('smoke.version');
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pgcrypto') THEN
		RAISE EXCEPTION 'CREATE EXTENSION retention CASCADE did not install pgcrypto';
	END IF;
END
$$;

CREATE TABLE public.cdr (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	caller		retention.msisdn(billing),
	cell		retention.cell(network_security),
	ended_at	timestamptz
);
SELECT retention.protect('public.cdr', ended_at => 'ended_at', subscriber => 'caller',
						 on_expiry => 'anonymize');

-- written on time: kept; written late (two years after the call): both
-- values are past their windows and cleared by the write-time trigger
INSERT INTO public.cdr (caller, cell, ended_at) VALUES
	('+33612345678', '208-01-1234-5678', now() - interval '40 days'),
	('+33698765432', '208-01-1234-5679', now() - interval '2 years');

DO $$
DECLARE
	r record;
BEGIN
	SELECT * INTO r FROM public.cdr WHERE id = 1;
	IF r.caller IS NULL OR r.cell IS NULL THEN
		RAISE EXCEPTION 'a row written on time lost values: %', r;
	END IF;
	SELECT * INTO r FROM public.cdr WHERE id = 2;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'the late row was deleted, on_expiry is anonymize';
	END IF;
	IF r.caller IS NOT NULL OR r.cell IS NOT NULL THEN
		RAISE EXCEPTION 'the late row was not cleared at write time: %', r;
	END IF;
END
$$;

-- a shorter network_security window makes row 1's cell overdue: verify()
-- says so, the sweep clears it, verify() is then content
SELECT retention.set_window('network_security', '1 month');

DO $$
DECLARE
	n bigint;
BEGIN
	SELECT overdue_rows INTO n FROM retention.report()
	 WHERE "table" = 'public.cdr'::regclass AND "column" = 'cell';
	IF n IS DISTINCT FROM 1 THEN
		RAISE EXCEPTION 'report() shows % overdue cells before the sweep, expected 1', n;
	END IF;
	BEGIN
		PERFORM retention.verify();
		RAISE EXCEPTION 'verify() passed with an overdue value';
	EXCEPTION WHEN object_not_in_prerequisite_state THEN
		NULL;					-- 55000, as documented
	END;
END
$$;

CALL retention.sweep();

DO $$
DECLARE
	r record;
	n bigint;
BEGIN
	SELECT * INTO r FROM public.cdr WHERE id = 1;
	IF r.cell IS NOT NULL OR r.caller IS NULL THEN
		RAISE EXCEPTION 'the sweep did not clear only the overdue cell: %', r;
	END IF;
	SELECT count(*) INTO n FROM retention.sweep_log
	 WHERE relid = 'public.cdr'::regclass AND status = 'done' AND rows_anonymized = 1;
	IF n <> 1 THEN
		RAISE EXCEPTION 'sweep_log has % done runs anonymizing one row, expected 1', n;
	END IF;
	SELECT sum(overdue_rows) INTO n FROM retention.report() WHERE "table" = 'public.cdr'::regclass;
	IF n IS DISTINCT FROM 0::bigint THEN
		RAISE EXCEPTION 'report() shows % overdue rows after the sweep', n;
	END IF;
	PERFORM retention.verify();
	SELECT count(*) INTO n FROM retention.verify_audit_log() WHERE valid AND rows_checked > 0;
	IF n <> 1 THEN
		RAISE EXCEPTION 'the audit log is empty or its chain is broken';
	END IF;
END
$$;

SELECT "column", kind, rows_in_clear, overdue_rows FROM retention.report() ORDER BY "column";
