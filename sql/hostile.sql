--
-- Hostile identifiers: every entry point that takes a table, column, role
-- or purpose, on names with quotes, spaces, semicolons, mixed case and
-- non-ASCII letters, in a schema named to inject; nothing is injected
--
-- written for 1.0's rules: regime fr-2004 (sql/regimes.sql tests fr-2025)
SELECT count(*) >= 0 AS fr_2004 FROM retention.set_regime('fr-2004');
\set SHOW_CONTEXT never
CREATE SCHEMA "Opé'; DROP SCHEMA public CASCADE; --";
SET search_path = "Opé'; DROP SCHEMA public CASCADE; --", public;
CREATE TABLE "Appels ""CDR""; x" (
	"N°"				integer,
	"Appelant; DROP"	retention.msisdn(billing, law_enforcement),
	"Cellule ""ci"""	retention.cell(network_security),
	"Fin d'appel"		timestamptz,
	"Échéance"			timestamptz
);
CREATE ROLE "Équipe ""factu""; DROP ROLE x";
SET session_replication_role = replica;		-- history, written before protection
INSERT INTO "Appels ""CDR""; x" VALUES
	(1, '33611111111', '208-01-1-1', now() - interval '2 years', NULL),
	(2, '33611111111', '208-01-1-2', now() - interval '6 months', now() - interval '5 months'),
	(3, '33622222222', '208-01-1-3', now() - interval '1 day', NULL);
RESET session_replication_role;

SELECT retention.protect('"Appels ""CDR""; x"', 'Fin d''appel', subscriber => 'Appelant; DROP',
						 billing_anchor => 'Échéance');
SELECT attname, purposes FROM retention.tagged_columns('"Appels ""CDR""; x"');
SELECT retention.set_method('"Appels ""CDR""; x"', 'Cellule "ci"', 'generalize');
SELECT retention.hold('"Appels ""CDR""; x"', '+33611111111', now() - interval '3 years', now(),
					  'quick_freeze', 'ordre ''7''; --', now() + interval '1 day',
					  authority => 'Juge d''instruction ''8''; --') > 0 AS held;
SELECT retention.expose('"Appels ""CDR""; x"', 'billing', 'Équipe "factu"; DROP ROLE x');
SELECT relname FROM pg_class WHERE relkind = 'v' AND relnamespace = '"Opé''; DROP SCHEMA public CASCADE; --"'::regnamespace;
-- the view follows a change of the table
ALTER TABLE "Appels ""CDR""; x" ADD COLUMN "Durée (s)" integer;
SET ROLE "Équipe ""factu""; DROP ROLE x";
SELECT "N°", "Appelant; DROP", "Durée (s)" FROM "Appels ""CDR""; x_billing" ORDER BY 1;
RESET ROLE;
SET client_min_messages = warning;
CALL retention.sweep(dry_run => true);
CALL retention.sweep('"Appels ""CDR""; x"', batch_size => 1);
RESET client_min_messages;
SELECT "N°", "Appelant; DROP", "Cellule ""ci""" FROM "Appels ""CDR""; x" ORDER BY 1;
SELECT status, rows_anonymized, rows_deleted, rows_held FROM retention.sweep_log
 WHERE relid = '"Appels ""CDR""; x"'::regclass;
SELECT "column", kind, overdue_rows, held_rows FROM retention.report()
 WHERE "table" = '"Appels ""CDR""; x"'::regclass ORDER BY kind, "column";
SELECT retention.verify();
SELECT * FROM retention.anonymize('"Appels ""CDR""; x"'::regclass, subscriber => '33622222222');
SELECT retention.unexpose('"Appels ""CDR""; x"', 'billing', 'Équipe "factu"; DROP ROLE x');
SELECT retention.unprotect('"Appels ""CDR""; x"');
-- still here: nothing was injected
SELECT count(*) AS public_schema FROM pg_namespace WHERE nspname = 'public';
SELECT count(*) AS role_x FROM pg_roles WHERE rolname = 'x';
RESET search_path;
DROP SCHEMA "Opé'; DROP SCHEMA public CASCADE; --" CASCADE;
DROP OWNED BY "Équipe ""factu""; DROP ROLE x";
DROP ROLE "Équipe ""factu""; DROP ROLE x";
DELETE FROM retention.hold;
SELECT count(*) >= 0 AS fr_2025 FROM retention.set_regime('fr-2025');
