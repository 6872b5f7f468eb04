-- make demo: a tour of retention on a small CDR table.
\pset null '∅'
\set SHOW_CONTEXT never

CREATE EXTENSION retention CASCADE;

-- 1. The policy: each purpose's window, its legal ceiling and basis
SELECT purpose, "window", ceiling, legal_basis FROM retention.policy;

-- a window can be shortened, never set past its ceiling
SELECT retention.set_window('network_security', '2 months');
\set ON_ERROR_STOP 0
SELECT retention.set_window('billing', '2 years');
\set ON_ERROR_STOP 1

-- 2. A CDR table whose columns say what they may be kept for
CREATE TABLE cdr (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	caller		retention.msisdn(billing, law_enforcement),
	callee		retention.msisdn(billing),
	imei		retention.imei(law_enforcement),
	cell		retention.cell(law_enforcement, network_security),
	sip_call_id	retention.ident,
	started_at	timestamptz NOT NULL,
	ended_at	timestamptz,
	duration_s	integer
);
\d cdr

-- identifiers are validated and normalized on the way in
\set ON_ERROR_STOP 0
INSERT INTO cdr (caller, callee, imei, cell, started_at) VALUES
	('+33612345678', '+33698765432', '490154203237519', '208-01-1234-5678', now());
\set ON_ERROR_STOP 1
INSERT INTO cdr (caller, callee, imei, cell, sip_call_id, started_at, ended_at, duration_s)
SELECT '+3361' || lpad((i % 97)::text, 7, '0'),
	   '+3362' || lpad((i % 89)::text, 7, '0'),
	   '490154203237518',
	   '208-01-' || (i % 5) || '-' || (1000 + i % 41),
	   'a84b4c76e66710@pc33.example.net;' || i,
	   ts, ts + (i % 600) * interval '1 second', i % 600
  FROM generate_series(1, 2000) i,
	   LATERAL (SELECT now() - i * interval '5 hours' AS ts) t;
SELECT caller, callee, imei, cell, ended_at FROM cdr ORDER BY id LIMIT 3;

-- billing queries are plain SQL on the tagged columns
SELECT caller, count(*) AS calls, sum(duration_s) AS seconds
  FROM cdr WHERE caller LIKE '33610%' GROUP BY caller ORDER BY calls DESC LIMIT 3;

-- 3. Every policy change is in the tamper-evident audit log
SELECT id, actor, action, object, details FROM retention.audit_log ORDER BY id;
SELECT valid, rows_checked, problem FROM retention.verify_audit_log();
