--
-- Holds (SPEC 3.5) and marketing consent (SPEC 3.6)
--
\set SHOW_CONTEXT never
SET search_path = public;
SELECT coalesce(max(id), 0) AS audit0 FROM retention.audit_log \gset
SELECT coalesce(max(id), 0) AS sweep0 FROM retention.sweep_log \gset
-- hold ids appear in messages: start them afresh
DELETE FROM retention.hold;
ALTER SEQUENCE retention.hold_id_seq RESTART;

CREATE TABLE cdr (
	id			integer PRIMARY KEY,
	caller		retention.msisdn(billing, law_enforcement),
	callee		retention.msisdn(billing),
	cell		retention.cell(network_security),
	promo_cell	retention.cell(marketing),
	ended_at	timestamptz
);
-- three subscribers, a call a month for sixteen months, written before
-- protection so that the sweep has work to do
INSERT INTO cdr SELECT i, '3361111111' || (i % 3), '33622222222', '208-01-1-' || i, '208-01-2-' || i,
					   now() - i * interval '1 month'
  FROM generate_series(0, 15) i;
SELECT retention.protect('cdr', 'ended_at', subscriber => 'caller');

-- a billing dispute holds what is kept for billing; a judicial request the
-- whole row, until its order ends
SELECT retention.hold('cdr', subscriber => '+33611111110', from_ts => now() - interval '2 years',
					  to_ts => now(), reason => 'billing_dispute', reference => 'INV-2026-0042') AS dispute \gset
SELECT retention.hold('cdr', subscriber => '33611111111', from_ts => now() - interval '2 years',
					  to_ts => now(), reason => 'judicial_request', reference => 'PV 2026/77',
					  until => now() + interval '6 months') AS order_hold \gset
SELECT relid, subscriber, reason, reference, until IS NOT NULL AS has_until, released_at
  FROM retention.hold WHERE relid = 'cdr'::regclass ORDER BY id;
-- a date as the end of the period covers that day
SELECT retention.hold('cdr', '33611111112', '2026-01-01', '2026-03-31', 'quick_freeze', 'QF-1',
					  now() + interval '1 month', authority => 'TJ Paris') AS freeze \gset
SELECT to_ts = '2026-04-01'::timestamptz - interval '1 microsecond' AS whole_last_day
  FROM retention.hold WHERE id = :freeze;
SELECT retention.release(:freeze, 'entered by mistake');

-- consent keeps marketing data, and the subscriber with it
SELECT retention.grant_consent('+33611111112', now() + interval '6 months', now() + interval '1 year');
SELECT subscriber, valid_until > now() AS active, withdrawn_at FROM retention.consent;

-- hold and consent errors
SELECT retention.hold('cdr', '33611111110', now() - interval '1 year', now(), 'curiosity', 'X');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.hold('cdr', '33611111110', now() - interval '1 year', now(), 'judicial_request', 'PV-1');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.hold('cdr', '33611111110', now(), now() - interval '1 year', 'billing_dispute', 'INV-1');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.hold('cdr', '33611111110', now() - interval '1 year', now(), 'billing_dispute', ' ');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.hold('cdr', '33611111110', now() - interval '1 year', now(), 'quick_freeze', 'QF-2', '2020-01-01');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.hold('cdr', 'not a number', now() - interval '1 year', now(), 'billing_dispute', 'INV-1');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.hold('pg_class', '33611111110', now() - interval '1 year', now(), 'billing_dispute', 'INV-1');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.release(999999);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.release(:freeze);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.grant_consent('33611111110', 'infinity', 'infinity');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.grant_consent('33611111110', '2100-01-01', '2099-01-01');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.grant_consent('33611111110', '2020-01-01', '2099-01-01');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.withdraw_consent('33699999999');
\echo :LAST_ERROR_SQLSTATE

-- the sweep: held rows stay; consent keeps marketing data and the subscriber
SET client_min_messages = warning;
CALL retention.sweep('cdr');
RESET client_min_messages;
SELECT id, caller, callee, cell IS NOT NULL AS cell, promo_cell IS NOT NULL AS promo FROM cdr ORDER BY id;
SELECT rows_anonymized, rows_deleted, rows_held FROM retention.sweep_log ORDER BY id DESC LIMIT 1;

-- anonymize(tbl, subscriber) leaves held rows and says how many
SELECT rows_anonymized, rows_deleted, rows_held, (SELECT jsonb_agg(k - 'until') FROM jsonb_array_elements(kept) k) AS kept_but_until
  FROM retention.anonymize('cdr', subscriber => '33611111111');

-- a withdrawal makes marketing-only data due at once, not at the next sweep
SELECT retention.withdraw_consent('33611111112');
SELECT id, caller, promo_cell IS NOT NULL AS promo FROM cdr WHERE caller = '33611111112' OR id IN (14) ORDER BY id;

-- after release the rows fall due again; a hold never brings back what is gone
SELECT retention.release(:dispute, 'dispute closed');
SELECT retention.release(:order_hold, 'order lifted');
SELECT count(*) FILTER (WHERE caller IS NOT NULL) AS callers_before FROM cdr WHERE ended_at <= now() - interval '1 year';
SET client_min_messages = warning;
CALL retention.sweep('cdr');
RESET client_min_messages;
SELECT count(*) AS old_rows_left FROM cdr WHERE ended_at <= now() - interval '1 year';
SELECT rows_anonymized, rows_deleted, rows_held FROM retention.sweep_log ORDER BY id DESC LIMIT 1;

-- every action is audited, without the subscriber's number
SELECT action, details - 'from' - 'to' - 'until' - 'valid_until' - 'contract_end' AS details
  FROM retention.audit_log
 WHERE action IN ('hold', 'release', 'grant_consent', 'withdraw_consent', 'anonymize_subscriber')
   AND id > :audit0
 ORDER BY id;
SELECT count(*) AS leaks FROM retention.audit_log WHERE details::text LIKE '%3361111111%';

-- only retention_admin places or releases holds and records consent
CREATE ROLE regress_clerk;
SET ROLE regress_clerk;
SELECT retention.hold('cdr', '33611111110', now() - interval '1 year', now(), 'billing_dispute', 'INV-9');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.release(1);
\echo :LAST_ERROR_SQLSTATE
SELECT retention.grant_consent('33611111110', now() + interval '1 day', now() + interval '1 year');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.withdraw_consent('33611111110');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM retention.hold;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM retention.consent;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_clerk;

-- a hold also keeps what a late write brings in.  Placed between two writes
-- of one transaction, on a table with no hold before, it holds the second
CREATE TABLE cdr_w (caller retention.msisdn(billing), cell retention.cell(network_security),
					ended_at timestamptz);
SELECT retention.protect('cdr_w', 'ended_at', subscriber => 'caller');
BEGIN;
INSERT INTO cdr_w VALUES ('33688888888', '208-01-1-3', now() - interval '14 months');
SELECT retention.hold('cdr_w', '33688888888', now() - interval '2 years', now(),
					  'judicial_request', 'PV-W2', now() + interval '1 month') > 0 AS held;
INSERT INTO cdr_w VALUES ('33688888888', '208-01-1-4', now() - interval '14 months');
COMMIT;
SELECT caller, cell FROM cdr_w ORDER BY caller, cell;
-- in one statement, the held subscriber's row stays whole, the other one's,
-- fully due, is deleted
SELECT retention.hold('cdr_w', '33611111111', now() - interval '2 years', now(),
					  'judicial_request', 'PV-W1', now() + interval '1 month') > 0 AS held;
INSERT INTO cdr_w VALUES ('33611111111', '208-01-1-1', now() - interval '14 months'),
						 ('33699999999', '208-01-1-2', now() - interval '14 months');
SELECT caller, cell FROM cdr_w ORDER BY caller, cell;
SELECT retention.unprotect('cdr_w');
DELETE FROM retention.write_log WHERE relid = 'cdr_w'::regclass;
DROP TABLE cdr_w;

-- dropping a table releases its holds (its OID may be given to another)
CREATE TABLE cdr_gone (caller retention.msisdn(billing), ended_at timestamptz);
SELECT retention.protect('cdr_gone', 'ended_at', subscriber => 'caller');
SELECT retention.hold('cdr_gone', '33611111110', now() - interval '1 year', now(),
					  'judicial_request', 'PV-GONE', now() + interval '1 month') AS gone_hold \gset
SELECT retention.unprotect('cdr_gone');
DROP TABLE cdr_gone;
SELECT released_at IS NOT NULL AS released, released_by = session_user AS by_dropper, release_note
  FROM retention.hold WHERE id = :gone_hold;
SELECT action, object, details - 'hold' AS details, (details->>'hold')::bigint = :gone_hold AS that_hold
  FROM retention.audit_log ORDER BY id DESC LIMIT 1;

SELECT retention.unprotect('cdr');
DROP TABLE cdr;
DELETE FROM retention.consent;
DELETE FROM retention.hold;
RESET search_path;
