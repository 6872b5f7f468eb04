-- make demo: a tour of retention on a small CDR table.  Every comment,
-- statement and result is printed; an ERROR below is the point of its step
-- (the comment above it says why), and a NULL shows as (null).
\pset null '(null)'
\set SHOW_CONTEXT never

CREATE EXTENSION retention CASCADE;

-- 1. The law in force: today's CPCE L34-1 (regime fr-2025).  Each purpose
--    must or may be kept, between a floor and a ceiling, on a condition,
--    with the paragraph that says so.  A window can be shortened down to
--    the floor, never set past the ceiling.
SELECT retention.regime_in_force();
SELECT purpose, kind, floor, ceiling, "window", condition, legal_basis FROM retention.policy;
--    Setting billing past its one-year ceiling fails, and so does keeping
--    connection data less than the year the law requires:
\set ON_ERROR_STOP 0
SELECT retention.set_window('billing', '2 years');
SELECT retention.set_window('connection', '6 months');
\set ON_ERROR_STOP 1
--    Other traffic data are kept only while a national-security decree
--    is in force (III); the operator declares each one
SELECT retention.declare_basis('national_security', 'décret n° 2025-980',
							   '2025-10-21 00:00 Europe/Paris', '2026-10-21 00:00 Europe/Paris') AS basis_id;

-- 2. A CDR table whose columns say, in their type, what they may be kept for
CREATE TABLE cdr (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	caller		retention.msisdn(connection, billing),
	callee		retention.msisdn(national_security, billing),
	imei		retention.imei(connection),
	cell		retention.cell(national_security, network_security),
	promo_cell	retention.cell(marketing),
	outgoing	boolean NOT NULL DEFAULT true,
	started_at	timestamptz NOT NULL,
	ended_at	timestamptz,
	duration_s	integer
);
\d cdr

-- identifiers are validated and normalized on the way in: this IMEI's
-- check digit is wrong, so the row is refused
\set ON_ERROR_STOP 0
INSERT INTO cdr (caller, callee, imei, cell, started_at) VALUES
	('+33612345678', '+33698765432', '490154203237519', '208-01-1234-5678', now());
\set ON_ERROR_STOP 1

-- a year and a half of history, loaded before the table is protected
INSERT INTO cdr (caller, callee, imei, cell, promo_cell, outgoing, started_at, ended_at, duration_s)
SELECT '+3361' || lpad((i % 7)::text, 7, '0'),
	   '+3362' || lpad((i % 89)::text, 7, '0'),
	   '490154203237518',
	   '208-01-' || (i % 5) || '-' || (1000 + i % 41),
	   '208-01-' || (i % 5) || '-' || (2000 + i % 13),
	   i % 4 <> 0, ts, ts + (i % 600) * interval '1 second', i % 600
  FROM generate_series(1, 2000) i,
	   LATERAL (SELECT now() - i * interval '6 hours' AS ts) t;
SELECT caller, callee, imei, cell, promo_cell FROM cdr ORDER BY id LIMIT 3;

-- billing queries are plain SQL on the tagged columns, at text speed
SELECT caller, count(*) AS calls, sum(duration_s) AS seconds
  FROM cdr GROUP BY caller ORDER BY caller LIMIT 3;

-- 3. Protect it: expiry triggers now, sweeps later.  Billing keeps only
--    what the operator's own subscriber originated (IV ¶1, R10-14)
SELECT retention.protect('cdr', ended_at => 'ended_at', subscriber => 'caller',
						 originated => 'outgoing');
SELECT retention.set_method('cdr', 'cell', 'generalize');
SELECT * FROM retention.tagged_columns('cdr');

-- a CDR that arrives late is never stored in clear: what is due goes at once
INSERT INTO cdr (caller, callee, imei, cell, promo_cell, started_at, ended_at, duration_s)
VALUES ('+33611112222', '+33622223333', '490154203237518', '208-01-7-77', '208-01-7-78',
		now() - interval '5 months', now() - interval '5 months', 42)
RETURNING caller, callee, imei, cell, promo_cell;

-- 4. A billing dispute and a judicial request hold rows; one subscriber
--    consents to marketing for six months
SELECT retention.hold('cdr', subscriber => '+33610000001', from_ts => now() - interval '2 years',
					  to_ts => now(), reason => 'billing_dispute', reference => 'INV-2026-0042');
SELECT retention.hold('cdr', subscriber => '+33610000002', from_ts => now() - interval '2 years',
					  to_ts => now(), reason => 'judicial_request', reference => 'PV 2026/0117',
					  until => now() + interval '6 months');
SELECT retention.grant_consent('+33610000003', valid_until => now() + interval '6 months',
							   contract_end => now() + interval '2 years');

-- 4b. Subscriber and contract data (II bis 1° and 2°), anchored on the
--    end of the contract: identity kept 5 years after it, account and
--    payment data 1 year; nothing falls due while the contract runs
CREATE TABLE subscriber (
	msisdn			retention.msisdn(identity),
	full_name		retention.ident(identity),
	login			retention.ident(account),
	iban			retention.ident(payment),
	plan			text,
	contract_end	timestamptz
);
SELECT retention.protect('subscriber', ended_at => 'contract_end', subscriber => 'msisdn',
						 table_kind => 'subscriber');
INSERT INTO subscriber VALUES
	('+33610000001', 'Alice Martin', 'alice', 'FR7630001007941234567890185', 'postpaid', NULL),
	('+33610000002', 'Bruno Petit', 'bruno', 'FR7630001007941234567890186', 'postpaid', now() - interval '8 months'),
	('+33610000005', 'Chloé Roux', 'chloe', 'FR7630001007941234567890187', 'prepaid', now() - interval '2 years'),
	('+33610000006', 'David Blanc', 'david', 'FR7630001007941234567890188', 'postpaid', now() - interval '6 years');
SELECT msisdn, full_name, login, iban, plan, contract_end IS NULL AS running FROM subscriber ORDER BY msisdn;

-- 5. The report before the sweep: per column the rules that keep it,
--    their floor, ceiling and citation; what is in clear, overdue, held;
--    the decree national-security data rest on
SELECT "table", "column", kind, rules, floor, ceiling, rows_in_clear, overdue_rows, held_rows, basis, note
  FROM retention.report();
-- verify() raises while anything is overdue: here, before the sweep
\set ON_ERROR_STOP 0
SELECT retention.verify();
\set ON_ERROR_STOP 1

-- 6. The sweep (the background worker runs it nightly; here by hand)
CALL retention.sweep(dry_run => true);
CALL retention.sweep();
SELECT relid, status, rows_anonymized, rows_deleted, rows_held, rows_skipped, cutoff
  FROM retention.sweep_log;
SELECT "table", "column", rows_in_clear, overdue_rows, held_rows FROM retention.report() WHERE kind = 'tagged';
SELECT retention.verify();

-- what is left: recent rows whole, older ones with only what may be kept
SELECT caller, callee, imei, cell, promo_cell, date_trunc('day', ended_at)::date AS ended
  FROM cdr WHERE id IN (10, 500, 1000, 1500) OR caller = '33610000002' AND ended_at < now() - interval '13 months'
 ORDER BY id LIMIT 6;

-- 7. Purpose-bound access: the billing team sees billing columns, open rows
CREATE ROLE billing_team;
SELECT retention.expose('cdr', 'billing', to_role => 'billing_team');
SET ROLE billing_team;
SELECT count(*) AS billing_rows, min(ended_at)::date AS oldest FROM cdr_billing;
-- but not the table itself
\set ON_ERROR_STOP 0
SELECT imei FROM cdr LIMIT 1;
\set ON_ERROR_STOP 1
RESET ROLE;

-- 8. A subject's request, and every action in the tamper-evident audit log
SELECT * FROM retention.anonymize('cdr', subscriber => '+33610000004');
SELECT id, actor, action, object, details FROM retention.audit_log ORDER BY id;
SELECT valid, rows_checked, problem FROM retention.verify_audit_log();
