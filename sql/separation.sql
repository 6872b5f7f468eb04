--
-- Separation (CJEU C-470/21, 30 April 2024): connection-source data (CPCE
-- L34-1 II bis 3°) kept apart from other traffic data.  report() flags a
-- table or a view that holds both; expose() refuses to build such a view.
--
\set SHOW_CONTEXT never
SET search_path = public;
SELECT coalesce(max(id), 0) AS audit0 FROM retention.audit_log \gset

-- the rules each column is governed by under the regime in force (1.0's
-- law_enforcement reads as connection on an MSISDN, an IMEI or an ident,
-- as national_security on a cell); an untagged column has none
CREATE TABLE sep_cdr (
	id			integer,
	caller		retention.msisdn(connection, national_security),
	imei		retention.imei(law_enforcement),
	cell		retention.cell(law_enforcement),
	callee		retention.msisdn(billing),
	ended_at	timestamptz,
	duration	integer
);
SELECT retention.protect('sep_cdr', 'ended_at', subscriber => 'caller');
SELECT a.attname, retention._column_rules('sep_cdr', a.attname) AS rules
  FROM pg_attribute a WHERE a.attrelid = 'sep_cdr'::regclass AND a.attnum > 0 ORDER BY a.attnum;

-- the table keeps the calling number and the IMEI (connection source and
-- terminal) in the rows that hold the cell and the callee
SELECT "column", kind, purposes, note FROM retention.report()
 WHERE "table" = 'sep_cdr'::regclass AND kind = 'separation';

-- a national_security view would show the caller (connection data too)
-- with the cell: refused
CREATE ROLE regress_sep_police;
CREATE ROLE regress_sep_billing;
SELECT retention.expose('sep_cdr', 'national_security', 'regress_sep_police');
\echo :LAST_ERROR_SQLSTATE
SELECT to_regclass('sep_cdr_national_security') AS no_view;
-- law_enforcement has no rule of its own under fr-2025: no view for it
SELECT retention.expose('sep_cdr', 'law_enforcement', 'regress_sep_police');
\echo :LAST_ERROR_SQLSTATE
-- the billing view shows the callee only: built
SELECT retention.expose('sep_cdr', 'billing', 'regress_sep_billing');
SELECT count(*) AS billing_view_flags FROM retention.report()
 WHERE "table" = 'sep_cdr'::regclass AND kind = 'separation' AND note LIKE 'view%';

-- connection data alone, with untagged technical columns (the time and
-- duration of the connection are not other personal data): no flag, and
-- a connection view is built
CREATE TABLE sep_conn (
	caller		retention.msisdn(connection),
	ip			retention.ident(connection),
	imei		retention.imei(law_enforcement),
	ended_at	timestamptz,
	bytes		bigint
);
SELECT retention.protect('sep_conn', 'ended_at', subscriber => 'caller');
SELECT count(*) AS flags FROM retention.report() WHERE "table" = 'sep_conn'::regclass AND kind = 'separation';
SELECT retention.expose('sep_conn', 'connection', 'regress_sep_police');

-- the calling number also kept for billing is still the calling number:
-- one column is no combination
CREATE TABLE sep_bill (
	caller		retention.msisdn(billing, connection),
	ended_at	timestamptz
);
SELECT retention.protect('sep_bill', 'ended_at', subscriber => 'caller');
SELECT count(*) AS flags FROM retention.report() WHERE "table" = 'sep_bill'::regclass AND kind = 'separation';
-- next to the callee kept for billing, it is: the table is flagged, but
-- its billing view shows both as billing data (R10-14 I keeps them
-- together for billing) and its connection view the caller only
ALTER TABLE sep_bill ADD COLUMN callee retention.msisdn(billing),
					 ADD COLUMN cell retention.cell(network_security);
SELECT "column", kind, purposes, note FROM retention.report()
 WHERE "table" = 'sep_bill'::regclass AND kind = 'separation';
SELECT retention.expose('sep_bill', 'billing', 'regress_sep_billing');
SELECT retention.expose('sep_bill', 'connection', 'regress_sep_police');
SELECT count(*) AS view_flags FROM retention.report()
 WHERE "table" = 'sep_bill'::regclass AND kind = 'separation' AND note LIKE 'view%';

-- a view that comes to mix after expose() (a column added: the view
-- follows the table) is flagged, and granted to no one else
CREATE TABLE sep_loc (
	cell		retention.cell(national_security),
	ended_at	timestamptz
);
SELECT retention.protect('sep_loc', 'ended_at');
SELECT retention.expose('sep_loc', 'national_security', 'regress_sep_police');
ALTER TABLE sep_loc ADD COLUMN ip retention.ident(connection, national_security);
SELECT attname FROM pg_attribute WHERE attrelid = 'sep_loc_national_security'::regclass AND attnum > 0 ORDER BY attnum;
SELECT "table", "column", kind, purposes, note FROM retention.report()
 WHERE "table" = 'sep_loc'::regclass AND kind = 'separation' ORDER BY note;
CREATE ROLE regress_sep_police2;
\set VERBOSITY terse
SELECT retention.expose('sep_loc', 'national_security', 'regress_sep_police2');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT has_table_privilege('regress_sep_police2', 'sep_loc_national_security', 'SELECT') AS granted;
SELECT retention.unexpose('sep_loc', 'national_security', 'regress_sep_police');
SELECT count(*) AS view_flags FROM retention.report()
 WHERE "table" = 'sep_loc'::regclass AND kind = 'separation' AND note LIKE 'view%';

-- a refused expose() is not audited; the ones built are
SELECT action, object, details->>'purpose' AS purpose FROM retention.audit_log
 WHERE id > :audit0 AND action IN ('expose', 'unexpose') ORDER BY id;

SELECT retention.unexpose('sep_cdr', 'billing', 'regress_sep_billing');
SELECT retention.unexpose('sep_bill', 'billing', 'regress_sep_billing');
SELECT retention.unexpose('sep_bill', 'connection', 'regress_sep_police');
SELECT retention.unexpose('sep_conn', 'connection', 'regress_sep_police');
SELECT retention.unprotect('sep_cdr');
SELECT retention.unprotect('sep_conn');
SELECT retention.unprotect('sep_bill');
SELECT retention.unprotect('sep_loc');
DROP TABLE sep_cdr, sep_conn, sep_bill, sep_loc;
DROP ROLE regress_sep_police;
DROP ROLE regress_sep_police2;
DROP ROLE regress_sep_billing;
RESET search_path;
