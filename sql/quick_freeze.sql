--
-- Quick freeze (CPCE L34-1 III bis): a hold with the order's reference,
-- authority and term; EU preservation orders (Regulation (EU) 2023/1543
-- art. 11: 60 days, extendable once by 30, then as long as a confirmed
-- production needs); extend_hold() and request_production()
--
\set SHOW_CONTEXT never
SET search_path = public;
-- terms are counted in calendar days: in UTC, every day has 24 hours
SET timezone = 'UTC';
SELECT coalesce(max(id), 0) AS audit0 FROM retention.audit_log \gset
-- hold ids appear in messages: start them afresh
DELETE FROM retention.hold;
ALTER SEQUENCE retention.hold_id_seq RESTART;
ALTER SEQUENCE retention.hold_renewal_id_seq RESTART;

CREATE ROLE regress_qf_owner;
CREATE TABLE qf_cdr (
	id			integer,
	caller		retention.msisdn(billing, law_enforcement),
	imei		retention.imei(law_enforcement),
	ended_at	timestamptz
);
ALTER TABLE qf_cdr OWNER TO regress_qf_owner;
SELECT retention.protect('qf_cdr', 'ended_at', subscriber => 'caller');

-- a national quick freeze: the order sets its term, which may be longer
-- than a year (III bis sets no maximum); the authority is recorded
SELECT retention.hold('qf_cdr', '33611111111', now() - interval '3 years', now(), 'quick_freeze',
					  'QF-NAT-1', until => now() + interval '18 months',
					  authority => 'Procureur de la République, TJ Paris') AS nat \gset
SELECT id, reason, order_kind, authority, reference, until > now() + interval '17 months' AS term,
	   extensions, production_requested_at
  FROM retention.hold WHERE id = :nat;
-- a judicial request needs no authority
SELECT retention.hold('qf_cdr', '33611111111', now() - interval '1 year', now(), 'judicial_request',
					  'PV-X', until => now() + interval '1 month') > 0 AS placed;
-- it keeps the rows it covers, even written after their deadline
INSERT INTO qf_cdr VALUES (1, '33611111111', '490154203237518', now() - interval '2 years'),
						  (2, '33622222222', '490154203237518', now() - interval '2 years');
SELECT id, caller, imei FROM qf_cdr ORDER BY id;

-- errors of hold()
SELECT retention.hold('qf_cdr', '33611111111', now() - interval '1 year', now(), 'quick_freeze',
					  'QF-X', until => now() + interval '1 month');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.hold('qf_cdr', '33611111111', now() - interval '1 year', now(), 'quick_freeze',
					  'QF-X', until => now() + interval '1 month', authority => '  ');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.hold('qf_cdr', '33611111111', now() - interval '1 year', now(), 'quick_freeze',
					  'QF-X', authority => 'TJ Paris');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.hold('qf_cdr', '33611111111', now() - interval '1 year', now(), 'quick_freeze',
					  'EPOC-X', authority => 'Staatsanwaltschaft München I', order_kind => 'eu_preservation');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.hold('qf_cdr', '33611111111', now() - interval '1 year', now(), 'quick_freeze',
					  'QF-X', until => now() + interval '1 month', authority => 'TJ Paris',
					  order_kind => 'interpol');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.hold('qf_cdr', '33611111111', now() - interval '1 year', now(), 'judicial_request',
					  'PV-X', until => now() + interval '1 month', order_kind => 'national');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.hold('qf_cdr', '33611111111', now() - interval '1 year', now(), 'quick_freeze',
					  'QF-X', until => 'infinity', authority => 'TJ Paris');
\echo :LAST_ERROR_SQLSTATE

-- an EU preservation order lasts 60 days: exactly 60 is accepted, one
-- second more is not (the detail, with today's dates, is shown below)
\set VERBOSITY terse
SELECT retention.hold('qf_cdr', '33611111111', now() - interval '1 year', now(), 'quick_freeze',
					  'EPOC-PR-61', until => now() + interval '60 days 1 second',
					  authority => 'Staatsanwaltschaft München I', order_kind => 'eu_preservation');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT retention.hold('qf_cdr', '33611111111', now() - interval '3 years', now(), 'quick_freeze',
					  'EPOC-PR-60', until => now() + interval '60 days',
					  authority => 'Staatsanwaltschaft München I', order_kind => 'eu_preservation') AS eu \gset
SELECT reason, order_kind, authority, until > now() + interval '59 days' AS sixty_days
  FROM retention.hold WHERE id = :eu;

-- the same bounds on a direct INSERT (a superuser, a restore); dates far
-- ahead so that the messages read the same whatever the day
INSERT INTO retention.hold (relid, subscriber, from_ts, to_ts, reason, reference, until, placed_at,
							authority, order_kind)
	VALUES ('qf_cdr', '33611111111', '2099-01-01', '2099-12-31', 'quick_freeze', 'EPOC-DIRECT',
			'2100-03-02 00:00:01+00', '2100-01-01 00:00:00+00', 'Parquet de Bruxelles', 'eu_preservation');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO retention.hold (relid, subscriber, from_ts, to_ts, reason, reference, until, placed_at,
							authority, order_kind)
	VALUES ('qf_cdr', '33611111111', '2099-01-01', '2099-12-31', 'quick_freeze', 'EPOC-DIRECT',
			NULL, '2100-01-01 00:00:00+00', 'Parquet de Bruxelles', 'eu_preservation');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
INSERT INTO retention.hold (relid, subscriber, from_ts, to_ts, reason, reference, until, order_kind)
	VALUES ('qf_cdr', '33611111111', '2099-01-01', '2099-12-31', 'billing_dispute', 'INV-DIRECT',
			NULL, 'national');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
-- EU-A: 60 days from 2100-01-01 is 2100-03-02
INSERT INTO retention.hold (relid, subscriber, from_ts, to_ts, reason, reference, until, placed_at,
							authority, order_kind)
	VALUES ('qf_cdr', '33611111111', '2099-01-01', '2099-12-31', 'quick_freeze', 'EPOC-A',
			'2100-03-02 00:00:00+00', '2100-01-01 00:00:00+00', 'Parquet de Bruxelles', 'eu_preservation')
	RETURNING id AS eu_a \gset
-- NAT-B: a quick freeze written without a kind is a national one
INSERT INTO retention.hold (relid, subscriber, from_ts, to_ts, reason, reference, until, placed_at,
							authority)
	VALUES ('qf_cdr', '33611111111', '2099-01-01', '2099-12-31', 'quick_freeze', 'QF-B',
			'2100-03-02 00:00:00+00', '2100-01-01 00:00:00+00', 'TJ Lyon')
	RETURNING order_kind;
SELECT id AS nat_b FROM retention.hold WHERE reference = 'QF-B' \gset

-- extend_hold(): an EU order once, by at most 30 days
SELECT retention.extend_hold(:eu_a, '2100-04-01 00:00:01+00', 'EPOC-A-EXT');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.extend_hold(:eu_a, '2100-04-01 00:00:00+00', 'EPOC-A-EXT');
SELECT until, extensions FROM retention.hold WHERE id = :eu_a;
SELECT retention.extend_hold(:eu_a, '2100-04-02 00:00:00+00', 'EPOC-A-EXT-2');
\echo :LAST_ERROR_SQLSTATE
-- the issuing authority confirms a production order: then no 30-day
-- limit, nor once; never shorter
SELECT retention.request_production(:eu_a, ' ');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.request_production(:eu_a, 'EPOC-A-PROD', until => '2100-03-31 23:59:59+00');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.request_production(:eu_a, 'EPOC-A-PROD', until => '2100-12-31 00:00:00+00');
SELECT retention.request_production(:eu_a, 'EPOC-A-PROD-2');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.extend_hold(:eu_a, '2101-06-30 00:00:00+00', 'EPOC-A-EXT-3');
SELECT until, extensions, production_requested_at IS NOT NULL AS production, production_reference
  FROM retention.hold WHERE id = :eu_a;
-- a national order: as often and as long as renewed, never shorter
SELECT retention.extend_hold(:nat_b, '2100-03-01 00:00:00+00', 'QF-B-1');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.extend_hold(:nat_b, '2100-03-02 00:00:00+00', 'QF-B-1');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.extend_hold(:nat_b, '2101-03-02 00:00:00+00', 'QF-B-1');
SELECT retention.extend_hold(:nat_b, '2103-03-02 00:00:00+00', 'QF-B-2');
SELECT until, extensions FROM retention.hold WHERE id = :nat_b;
SELECT retention.request_production(:nat_b, 'PROD-X');
\echo :LAST_ERROR_SQLSTATE
-- other errors
SELECT retention.extend_hold(999999, '2100-03-02', 'X');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.extend_hold(:nat_b, NULL, 'X');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.extend_hold(:nat_b, '2104-01-01', '');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.extend_hold(:nat_b, 'infinity', 'QF-B-INF');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.request_production(999999, 'X');
\echo :LAST_ERROR_SQLSTATE
-- a billing dispute without until lasts until released: nothing to extend
SELECT retention.hold('qf_cdr', '33611111111', now() - interval '1 year', now(), 'billing_dispute',
					  'INV-OPEN') AS dispute \gset
SELECT retention.extend_hold(:dispute, '2100-01-01', 'INV-OPEN-2');
\echo :LAST_ERROR_SQLSTATE
-- a hold whose term has passed, or released, is not renewed: place a new one
INSERT INTO retention.hold (relid, subscriber, from_ts, to_ts, reason, reference, until, placed_at,
							authority)
	VALUES ('qf_cdr', '33611111111', '2019-01-01', '2019-12-31', 'quick_freeze', 'QF-LAPSED',
			'2020-03-01 00:00:00+00', '2020-01-01 00:00:00+00', 'TJ Lyon');
SELECT id AS lapsed FROM retention.hold WHERE reference = 'QF-LAPSED' \gset
SELECT retention.extend_hold(:lapsed, '2100-01-01', 'QF-LAPSED-2');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.release(:nat_b, 'order lifted');
SELECT retention.extend_hold(:nat_b, '2104-03-02 00:00:00+00', 'QF-B-3');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.request_production(:nat_b, 'PROD-Y');
\echo :LAST_ERROR_SQLSTATE

-- production confirmed without a date: the EU hold lasts until released,
-- through sweeps, and has no end to extend
SELECT retention.request_production(:eu, 'EPOC-PROD-60');
SELECT until, production_reference FROM retention.hold WHERE id = :eu;
SELECT retention.extend_hold(:eu, now() + interval '1 year', 'EPOC-EXT-60');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.release(:nat, 'national order lifted');
SET client_min_messages = warning;
CALL retention.sweep('qf_cdr');
RESET client_min_messages;
SELECT id, caller, imei FROM qf_cdr ORDER BY id;
SELECT retention.release(:eu, 'produced');
SET client_min_messages = warning;
CALL retention.sweep('qf_cdr');
RESET client_min_messages;
SELECT id, caller, imei FROM qf_cdr ORDER BY id;

-- a hold only extends, even written directly by a superuser
UPDATE retention.hold SET until = until - interval '1 second' WHERE id = :eu_a;
\echo :LAST_ERROR_SQLSTATE
UPDATE retention.hold SET subscriber = '33699999999' WHERE id = :eu_a;
\echo :LAST_ERROR_SQLSTATE
UPDATE retention.hold SET order_kind = 'national' WHERE id = :eu_a;
\echo :LAST_ERROR_SQLSTATE
UPDATE retention.hold SET production_requested_at = NULL, production_reference = NULL WHERE id = :eu_a;
\echo :LAST_ERROR_SQLSTATE
UPDATE retention.hold SET extensions = 0 WHERE id = :eu_a;
\echo :LAST_ERROR_SQLSTATE
-- EU-C, not yet extended: no open end, no second extension, no 91 days
INSERT INTO retention.hold (relid, subscriber, from_ts, to_ts, reason, reference, until, placed_at,
							authority, order_kind)
	VALUES ('qf_cdr', '33611111111', '2099-01-01', '2099-12-31', 'quick_freeze', 'EPOC-C',
			'2100-02-01 00:00:00+00', '2100-01-01 00:00:00+00', 'Parquet de Bruxelles', 'eu_preservation');
SELECT id AS eu_c FROM retention.hold WHERE reference = 'EPOC-C' \gset
UPDATE retention.hold SET until = NULL WHERE id = :eu_c;
\echo :LAST_ERROR_SQLSTATE
UPDATE retention.hold SET until = '2100-04-01 00:00:01+00', extensions = 1 WHERE id = :eu_c;
\echo :LAST_ERROR_SQLSTATE
UPDATE retention.hold SET until = '2100-03-03 00:00:00+00', extensions = 2 WHERE id = :eu_c;
\echo :LAST_ERROR_SQLSTATE
-- from 2100-02-01, 30 days more is 2100-03-03, within the 90 days
SELECT retention.extend_hold(:eu_c, '2100-03-03 00:00:01+00', 'EPOC-C-EXT');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.extend_hold(:eu_c, '2100-03-03 00:00:00+00', 'EPOC-C-EXT');

-- nobody else extends a hold or writes the register: not a writer of the
-- table, not its owner, not even a retention_admin directly
CREATE ROLE regress_qf_writer;
GRANT INSERT ON qf_cdr TO regress_qf_writer;
CREATE ROLE regress_qf_admin IN ROLE retention_admin;
SET ROLE regress_qf_writer;
SELECT retention.extend_hold(:eu_c, '2100-03-04', 'W');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.request_production(:eu_c, 'W');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO retention.hold (relid, subscriber, from_ts, to_ts, reason, reference, until, authority)
	VALUES ('qf_cdr', '33611111111', '2000-01-01', '2100-01-01', 'quick_freeze', 'W', '2100-01-01', 'W');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_qf_owner;
SELECT retention.extend_hold(:eu_c, '2100-03-04', 'O');
\echo :LAST_ERROR_SQLSTATE
UPDATE retention.hold SET until = '2100-03-04' WHERE id = :eu_c;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO retention.hold_renewal (hold_id, kind, reference) VALUES (:eu_c, 'extension', 'O');
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER hold_term ON retention.hold;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_qf_admin;
UPDATE retention.hold SET until = '2100-03-04' WHERE id = :eu_c;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM retention.hold_renewal;
\echo :LAST_ERROR_SQLSTATE
SELECT retention.request_production(:eu_c, 'EPOC-C-PROD', until => '2100-06-30 00:00:00+00');
RESET ROLE;

-- the renewals, with their references
SELECT h.reference AS hold, r.kind, r.reference,
	   CASE WHEN r.hold_id = :eu THEN 'now() + 60 days' ELSE r.previous_until::text END AS previous_until, r.until,
	   r.renewed_by = session_user OR r.renewed_by = 'regress_qf_admin' AS by_known
  FROM retention.hold_renewal r JOIN retention.hold h ON h.id = r.hold_id
 ORDER BY r.id;
-- every step is audited, with its reference, never the subscriber's number
SELECT action, details - 'from' - 'to' - CASE WHEN action = 'hold' THEN 'until' ELSE '' END
		- CASE WHEN (details->>'hold')::bigint = :eu THEN 'previous_until' ELSE '' END AS details
  FROM retention.audit_log
 WHERE id > :audit0 AND action IN ('hold', 'extend_hold', 'request_production', 'release')
 ORDER BY id;
SELECT count(*) AS leaks FROM retention.audit_log WHERE id > :audit0 AND details::text LIKE '%33611111111%';
-- the auditor reads the register, authority and renewals included
SET ROLE retention_auditor;
SELECT reference, authority, order_kind, extensions, production_reference
  FROM retention.hold WHERE reason = 'quick_freeze' ORDER BY id;
SELECT count(*) AS renewals FROM retention.hold_renewal;
SELECT subscriber FROM retention.hold;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

UPDATE retention.hold SET released_at = now() WHERE released_at IS NULL;
SELECT retention.unprotect('qf_cdr');
DROP TABLE qf_cdr;
DELETE FROM retention.hold;
DROP ROLE regress_qf_writer;
DROP ROLE regress_qf_admin;
DROP ROLE regress_qf_owner;
RESET timezone;
RESET search_path;
