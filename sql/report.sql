--
-- Proof for the auditor: report() and verify() (SPEC 3.11)
--
\set SHOW_CONTEXT never
SET search_path = public;

CREATE TABLE cdr (
	id			integer PRIMARY KEY,
	caller		retention.msisdn(billing, law_enforcement),
	cell		retention.cell(network_security),
	sip_call_id	retention.ident,
	ended_at	timestamptz,
	duration	integer
);
SELECT retention.protect('cdr', 'ended_at', subscriber => 'caller');
SET session_replication_role = replica;		-- history, written before protection
INSERT INTO cdr SELECT i, '3361111111' || (i % 2), '208-01-1-' || i, 'call-' || i,
					   now() - i * interval '1 month', 60
  FROM generate_series(0, 14) i;
RESET session_replication_role;
-- copies a sweep does not reach
CREATE MATERIALIZED VIEW cdr_callers AS SELECT DISTINCT caller FROM cdr;
CREATE INDEX cdr_cell_prefix ON cdr (substr(cell, 1, 6));
ALTER TABLE cdr ADD COLUMN caller_country text GENERATED ALWAYS AS (substr(caller, 1, 2)) STORED;
CREATE TABLE line (msisdn retention.msisdn(billing) UNIQUE, ended_at timestamptz);
SELECT retention.protect('line', 'ended_at');
CREATE TABLE line_copy (msisdn text REFERENCES line (msisdn));

SELECT retention.hold('cdr', '33611111111', now() - interval '2 years', now(), 'judicial_request', 'PV-3',
					  now() + interval '1 month') AS h \gset

-- before a sweep: what is in clear, what is overdue, what is held
SELECT "table", "column", kind, type, purposes, "window", method, rows_in_clear,
	   oldest_clear IS NOT NULL AS has_oldest, overdue_rows, held_rows, last_sweep, note
  FROM retention.report();
SELECT retention.verify();
\echo :LAST_ERROR_SQLSTATE

-- after it, nothing is overdue: only held rows stay in clear
SET client_min_messages = warning;
CALL retention.sweep();
RESET client_min_messages;
SELECT "column", rows_in_clear, overdue_rows, held_rows, last_sweep IS NOT NULL AS swept
  FROM retention.report() WHERE kind = 'tagged';
SELECT retention.verify();

-- the oldest value in clear is the oldest held one
SELECT oldest_clear < now() - interval '1 year' AS held_old_value
  FROM retention.report() WHERE "column" = 'caller' AND kind = 'tagged';

-- only retention_admin sees the proof
CREATE ROLE regress_curious;
SET ROLE regress_curious;
SELECT * FROM retention.report();
\echo :LAST_ERROR_SQLSTATE
SELECT retention.verify();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_curious;

SELECT retention.release(:h);
SELECT retention.unprotect('cdr');
SELECT retention.unprotect('line');
DROP MATERIALIZED VIEW cdr_callers;
DROP TABLE cdr, line_copy, line;
DELETE FROM retention.hold;
RESET search_path;
