--
-- Legal regimes: today's L34-1 (fr-2025) and the seed's text (fr-2004)
-- as data; floors, decrees, the direction of a call, location consents,
-- subscriber tables, a subject's request, the switch (SPEC 3.12)
--
\set SHOW_CONTEXT never
SET search_path = public;
SET intervalstyle = postgres;
SELECT coalesce(max(id), 0) AS audit0 FROM retention.audit_log \gset

-- a new install enforces fr-2025
SELECT retention.regime_in_force();
SELECT code, superseded_by FROM retention.regime ORDER BY code;
SELECT purpose, kind, floor, ceiling, "window", anchor, condition, covers, legal_basis
  FROM retention.policy;
-- fr-2025 reads 1.0's law_enforcement by type
SELECT purpose, type, rule FROM retention.rule_alias ORDER BY type;

-- floors: what must be kept cannot be set shorter
SELECT retention.set_window('connection', '6 months');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('identity', '4 years 11 months 30 days');
\echo :LAST_ERROR_SQLSTATE
-- floor and ceiling equal: only that window
SELECT retention.set_window('connection', '1 year 1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('connection', '12 months');
SELECT retention.set_window('law_enforcement', '6 months');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('location', '1 day');
\echo :LAST_ERROR_SQLSTATE
-- what may be kept can be shorter
SELECT retention.set_window('network_security', '1 month');
SELECT retention.set_window('network_security', '3 months');

-- national-security decrees: dated legal bases, append-only
SELECT retention.declare_basis('terrorism', 'x', now(), now() + interval '1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.declare_basis('national_security', ' ', now(), now() + interval '1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.declare_basis('national_security', 'décret n° 1', now(), now());
\echo :LAST_ERROR_SQLSTATE
SELECT retention.declare_basis('national_security', 'décret n° 1', '2025-10-21 00:00+00', '2026-10-22 00:00+00');
\echo :LAST_ERROR_SQLSTATE
-- a decree in force from 200 days ago to 30 days ago, at whole seconds
SELECT date_trunc('second', now()) - interval '200 days' AS from_ts,
	   date_trunc('second', now()) - interval '30 days' AS to_ts \gset
SELECT retention.declare_basis('national_security', 'décret n° 2026-1', :'from_ts', :'to_ts') > 0 AS declared;
UPDATE retention.legal_basis SET valid_to = valid_to + interval '1 year';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM retention.legal_basis;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE retention.legal_basis;
\echo :LAST_ERROR_SQLSTATE
CREATE ROLE regress_regime_clerk;
SET ROLE regress_regime_clerk;
SELECT retention.declare_basis('national_security', 'mine', now(), now() + interval '1 day');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO retention.legal_basis (basis, reference, valid_from, valid_to)
	VALUES ('national_security', 'mine', now(), now() + interval '1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_regime('fr-2004');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- a CDR table under fr-2025
CREATE TABLE cdr25 (
	id			integer PRIMARY KEY,
	caller		retention.msisdn(connection, billing),
	callee		retention.msisdn(national_security, billing),
	cell		retention.cell(national_security, location),
	imei		retention.imei(law_enforcement),
	outgoing	boolean,
	ended_at	timestamptz
);
SELECT retention.protect('cdr25', 'ended_at', subscriber => 'caller', originated => 'outgoing');
-- errors of protect()'s new arguments
CREATE TABLE cdr25_bad (LIKE cdr25, direction text);
SELECT retention.protect('cdr25_bad', 'ended_at', originated => 'direction');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('cdr25_bad', 'ended_at', originated => 'nosuch');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('cdr25_bad', 'ended_at', table_kind => 'invoice');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('cdr25_bad', 'ended_at', originated => 'outgoing', table_kind => 'subscriber');
\echo :LAST_ERROR_SQLSTATE
-- billing keeps only what the operator's subscriber originated: an
-- incoming or unknown call's billing data go as it is written (INSERT and
-- COPY alike), an outgoing one's stay
CREATE TABLE cdr25_bill (callee retention.msisdn(billing), outgoing boolean, ended_at timestamptz);
SELECT retention.protect('cdr25_bill', 'ended_at', originated => 'outgoing');
INSERT INTO cdr25_bill VALUES ('33611110001', true, now() - interval '1 hour'),
							  ('33611110002', false, now() - interval '1 hour'),
							  ('33611110003', NULL, now() - interval '1 hour');
COPY cdr25_bill FROM stdin;
33611110004	t	2026-11-30 10:00:00+00
33611110005	f	2026-11-30 10:00:00+00
\.
SELECT callee, outgoing FROM cdr25_bill ORDER BY callee;
SELECT retention.unprotect('cdr25_bill');
DROP TABLE cdr25_bill;

-- a purpose no rule covers for the type keeps nothing, and says so
CREATE TABLE cdr25_cells (cell retention.cell(connection), ended_at timestamptz);
SELECT retention.protect('cdr25_cells', 'ended_at');
INSERT INTO cdr25_cells VALUES ('208-01-1-1', now() - interval '1 hour');
SELECT cell FROM cdr25_cells;

-- rows on both sides of the decree's bounds, outgoing and incoming
INSERT INTO cdr25 VALUES
	(1, '33611111111', '33622222222', '208-01-1-1', '490154203237518', true,  :'from_ts'::timestamptz - interval '1 second'),
	(2, '33611111111', '33622222222', '208-01-1-1', '490154203237518', false, :'from_ts'),
	(3, '33611111111', '33622222222', '208-01-1-1', '490154203237518', false, :'to_ts'::timestamptz - interval '1 second'),
	(4, '33611111111', '33622222222', '208-01-1-1', '490154203237518', false, :'to_ts'),
	(5, '33611111111', '33622222222', '208-01-1-1', '490154203237518', true,  :'to_ts'),
	(6, '33611111111', '33622222222', '208-01-1-1', '490154203237518', NULL,  now() - interval '1 day'),
	(7, '33611111111', '33622222222', '208-01-1-1', '490154203237518', true,  now() - interval '13 months');
-- 1: before the decree: callee kept for billing (outgoing), no cell;
-- 2, 3: under it: callee and cell kept for national security;
-- 4: the instant it lapsed, incoming: nothing but the connection data;
-- 5: same, outgoing: the callee for billing; 6: direction unknown: as
-- incoming; 7: past every rule's year: not kept at all
SELECT id, caller, callee, cell, imei FROM cdr25 ORDER BY id;
SELECT count(*) AS write_time_erasures FROM retention.write_log WHERE relid = 'cdr25'::regclass;

-- floors bind writers too, superusers included: a kept value of a
-- completed row is neither erased nor changed, its end is not brought
-- forward past the floor
\set VERBOSITY terse
UPDATE cdr25 SET imei = NULL WHERE id = 4;
UPDATE cdr25 SET caller = '33600000000' WHERE id = 4;
UPDATE cdr25 SET cell = NULL WHERE id = 3;
UPDATE cdr25 SET ended_at = ended_at - interval '2 years' WHERE id = 4;
\echo :LAST_ERROR_SQLSTATE
UPDATE cdr25 SET caller = NULL WHERE id = 4;
\set VERBOSITY default
-- what no rule must keep may go: billing may keep, not must
UPDATE cdr25 SET callee = NULL WHERE id = 5 RETURNING id, callee;
UPDATE cdr25 SET callee = '33622222222' WHERE id = 5;

-- per-purpose views follow the rules: the columns a rule governs, the
-- rows it keeps (billing: outgoing ones; national security: under the
-- decree)
CREATE ROLE regress_regime_reader;
SELECT retention.expose('cdr25', p, 'regress_regime_reader')
  FROM unnest('{billing,national_security,connection}'::text[]) p;
SELECT id, caller, callee, outgoing FROM cdr25_billing ORDER BY id;
SELECT id, callee, cell FROM cdr25_national_security ORDER BY id;
SELECT id, caller, imei FROM cdr25_connection ORDER BY id;

-- the rules per column, their floor, ceiling, citations; the decree
SELECT "column", kind, purposes, rules, floor, ceiling, "window", rows_in_clear, overdue_rows, basis,
	   replace(replace(note, :'from_ts'::timestamptz::text, 'FROM'), :'to_ts'::timestamptz::text, 'TO') AS note
  FROM retention.report() WHERE "table" = 'cdr25'::regclass AND kind IN ('tagged', 'legal basis')
 ORDER BY kind DESC, "column";
SELECT "column", rules, note FROM retention.report() WHERE "table" = 'cdr25_cells'::regclass AND kind = 'tagged';
SELECT retention.verify();
\echo :LAST_ERROR_SQLSTATE
SELECT retention.unprotect('cdr25_cells');
DROP TABLE cdr25_cells;

-- location consent (V): kept while granted, gone once suspended or withdrawn
CREATE TABLE cdr25_loc (
	caller		retention.msisdn(connection),
	cell		retention.cell(location),
	ended_at	timestamptz
);
SELECT retention.protect('cdr25_loc', 'ended_at', subscriber => 'caller');
SELECT retention.grant_location_consent('33633333333', now() + interval '1 month') > 0 AS granted;
\set VERBOSITY terse
SELECT retention.grant_location_consent('33633333333', now() - interval '1 second');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT retention.emergency_call('33644444444', 'SAMU 75-2026-118') AS emergency \gset
SELECT retention.emergency_call('33644444444', '');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO cdr25_loc VALUES
	('33633333333', '208-01-3-3', now() - interval '1 hour'),
	('33644444444', '208-01-4-4', now() - interval '1 hour'),
	('33655555555', '208-01-5-5', now() - interval '1 hour');
SELECT caller, cell FROM cdr25_loc ORDER BY caller;
SELECT retention.expose('cdr25_loc', 'location', 'regress_regime_reader');
SELECT cell FROM cdr25_loc_location ORDER BY cell;
SELECT retention.suspend_location_consent('33633333333');
-- suspended: no longer shown for location, and gone at the next sweep,
-- which reads the whole table for it
SELECT cell FROM cdr25_loc_location ORDER BY cell;
SELECT reason FROM retention.sweep_mark WHERE relid = 'cdr25_loc'::regclass;
SELECT retention.suspend_location_consent('33633333333');
\echo :LAST_ERROR_SQLSTATE
CALL retention.sweep('cdr25_loc');
SELECT caller, cell FROM cdr25_loc ORDER BY caller;
-- resuming brings nothing back
SELECT retention.resume_location_consent('33633333333');
INSERT INTO cdr25_loc VALUES ('33633333333', '208-01-3-4', now() - interval '1 minute');
SELECT caller, cell FROM cdr25_loc WHERE caller = '33633333333' ORDER BY cell NULLS FIRST;
SELECT retention.withdraw_location_consent('33633333333');
SELECT retention.withdraw_location_consent('33633333333');
\echo :LAST_ERROR_SQLSTATE
-- the rescue operation closed, the emergency call's location goes
SELECT retention.close_emergency(:emergency);
\set VERBOSITY terse
SELECT retention.close_emergency(:emergency);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT retention.close_emergency(-1);
\echo :LAST_ERROR_SQLSTATE
CALL retention.sweep('cdr25_loc');
SELECT caller, cell FROM cdr25_loc ORDER BY caller, cell;

-- a subject's erasure request never erases what must be kept (GDPR art.
-- 17(3)(b)): the connection data stay, billing goes
SELECT rows_anonymized, rows_deleted, rows_held,
	   (SELECT jsonb_agg(k - 'until') FROM jsonb_array_elements(kept) k) AS kept,
	   (SELECT bool_and((k->>'until')::timestamptz = ((:'to_ts'::timestamptz - interval '1 second') AT TIME ZONE 'UTC' + interval '1 year') AT TIME ZONE 'UTC')
		  FROM jsonb_array_elements(kept) k WHERE k->>'purpose' = 'national_security') AS until_a_year_after_the_last,
	   (SELECT bool_and((k->>'until')::timestamptz = ((SELECT ended_at FROM cdr25 WHERE id = 6) AT TIME ZONE 'UTC' + interval '1 year') AT TIME ZONE 'UTC')
		  FROM jsonb_array_elements(kept) k WHERE k->>'purpose' = 'connection') AS until_is_row_6s
  FROM retention.anonymize('cdr25'::regclass, '33611111111');
SELECT id, caller, callee, cell, imei FROM cdr25 ORDER BY id;

-- subscriber and contract data (II bis 1° and 2°): anchored on the end
-- of the contract, NULL while it runs
CREATE TABLE subscriber (
	msisdn			retention.msisdn(identity),
	name			retention.ident(identity),
	login			retention.ident(account),
	iban			retention.ident(payment),
	prepaid			boolean NOT NULL DEFAULT false,
	contract_end	timestamptz
);
SELECT retention.protect('subscriber', 'contract_end', subscriber => 'msisdn', table_kind => 'subscriber');
INSERT INTO subscriber VALUES
	('33670000001', 'Alice Martin', 'alice', 'FR7630001007941234567890185', false, NULL),
	('33670000002', 'Bruno Petit', 'bruno', 'FR7630001007941234567890186', false, now() - interval '11 months'),
	('33670000003', 'Chloé Roux', 'chloe', 'FR7630001007941234567890187', true, now() - interval '13 months'),
	('33670000004', 'David Blanc', 'david', 'FR7630001007941234567890188', false, now() - interval '5 years 1 day');
-- running: all kept; ended 11 months ago: all kept; a prepaid line ended
-- 13 months ago: identity only; ended more than 5 years ago: gone
SELECT msisdn, name, login, iban, prepaid FROM subscriber ORDER BY msisdn;
SELECT "column", rules, floor, ceiling FROM retention.report()
 WHERE "table" = 'subscriber'::regclass AND kind = 'tagged' ORDER BY "column";
-- a contract ends: its deadlines start
UPDATE subscriber SET contract_end = now() - interval '2 years' WHERE msisdn = '33670000001';
SELECT msisdn, name, login, iban FROM subscriber WHERE msisdn = '33670000001';
-- former subscribers kept past every deadline (written without the
-- trigger, as a restore would)
ALTER TABLE subscriber DISABLE TRIGGER retention_expire_before, DISABLE TRIGGER retention_expire_after;
INSERT INTO subscriber VALUES ('33670000009', 'Eve Noir', 'eve', 'FR76', false, now() - interval '6 years');
ALTER TABLE subscriber ENABLE ALWAYS TRIGGER retention_expire_before, ENABLE ALWAYS TRIGGER retention_expire_after;
SELECT kind, overdue_rows, note FROM retention.report()
 WHERE "table" = 'subscriber'::regclass AND kind = 'former subscribers';
CALL retention.sweep('subscriber');
SELECT kind, overdue_rows FROM retention.report()
 WHERE "table" = 'subscriber'::regclass AND kind = 'former subscribers';

-- switching regime: a dry run says per column what would change, and
-- changes nothing
SELECT * FROM retention.set_regime('fr-2004', dry_run => true) ORDER BY "table"::text, 2;
SELECT retention.regime_in_force();
SELECT retention.set_regime('fr-1789');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_regime('fr-2004', dry_run => NULL);
\echo :LAST_ERROR_SQLSTATE
-- the switch itself erases nothing
SELECT count(*) AS cdr25_rows, count(callee) AS callees FROM cdr25;
SELECT count(*) >= 0 AS switched FROM retention.set_regime('fr-2004');
SELECT retention.regime_in_force();
-- the next sweep reads every table under the new rules
SELECT DISTINCT reason FROM retention.sweep_mark WHERE relid::text LIKE 'cdr25%';
-- the views follow: fr-2004 has no rule for national security, billing
-- covers every row
SELECT id FROM cdr25_national_security;
SELECT id, callee FROM cdr25_billing ORDER BY id;
SELECT count(*) AS cdr25_rows, count(callee) AS callees FROM cdr25;
SELECT "column", rules, note FROM retention.report() WHERE "table" = 'subscriber'::regclass AND kind = 'tagged' ORDER BY 1;
SELECT retention.verify();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) >= 0 AS switched_back FROM retention.set_regime('fr-2025');

-- a superuser's edit of the law shows
UPDATE retention.rule SET floor = interval '1 day', default_window = interval '1 day', ceiling = interval '1 day'
 WHERE regime = 'fr-2025' AND purpose = 'connection';
SELECT note FROM retention.report() WHERE kind = 'not enforced' AND "table" IS NULL;
-- and a sweep run meanwhile, which cleared connection data a week old, is
-- proof of early erasure for good, the rule once restored
CREATE TABLE cdr25_early (caller retention.msisdn(connection), ended_at timestamptz);
INSERT INTO cdr25_early VALUES ('33699999999', now() - interval '7 days');
SELECT retention.protect('cdr25_early', 'ended_at');
CALL retention.sweep('cdr25_early');
SELECT count(caller) AS callers_left FROM cdr25_early;
UPDATE retention.rule SET floor = interval '1 year', default_window = interval '1 year', ceiling = interval '1 year'
 WHERE regime = 'fr-2025' AND purpose = 'connection';
SELECT count(*) AS law_problems FROM retention._regime_problems();
SELECT "table", kind,
	   regexp_replace(note, '^sweep \d+ of (\S+) at .* cleared (\S+) data anchored up to .*, less',
					  'sweep N of \1 at ... cleared \2 data anchored up to ..., less') AS note
  FROM retention.report() WHERE kind = 'early erasure';
\set VERBOSITY terse
SELECT retention.verify();
\set VERBOSITY default
-- every sweep records its regime and cutoffs
SELECT regime, cutoffs ? 'connection' AS has_connection, cutoffs ? 'marketing' AS has_marketing
  FROM retention.sweep_log WHERE relid = 'cdr25_early'::regclass;
SELECT retention.unprotect('cdr25_early');
DROP TABLE cdr25_early;
-- (only a superuser can remove the proof, as here for the tests that follow)
DELETE FROM retention.sweep_log WHERE id IN (SELECT e.id FROM retention._early_erasures() e);

-- every step audited
SELECT action, object, details - 'id' - 'valid_from' - 'valid_to' - 'valid_until' AS details
  FROM retention.audit_log WHERE id > :audit0
   AND action IN ('set_window', 'declare_basis', 'set_regime', 'grant_location_consent',
				  'suspend_location_consent', 'resume_location_consent',
				  'withdraw_location_consent', 'emergency_call', 'close_emergency')
 ORDER BY id;

DROP ROLE regress_regime_clerk;
SELECT retention.unexpose(t, p, 'regress_regime_reader')
  FROM (VALUES ('cdr25'::regclass, 'billing'), ('cdr25', 'national_security'), ('cdr25', 'connection'),
			   ('cdr25_loc', 'location')) v(t, p);
DROP ROLE regress_regime_reader;
SELECT retention.unprotect(t) FROM unnest('{cdr25,cdr25_loc,subscriber}'::regclass[]) t;
DROP TABLE cdr25, cdr25_bad, cdr25_loc, subscriber;
