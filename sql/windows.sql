--
-- Windows, anchors and time (issue 13, items 4-7 and 21): calendar time
-- decides, one zone decides, and nothing written can postpone a deadline.
--
-- written for 1.0's rules: regime fr-2004 (sql/regimes.sql tests fr-2025)
SELECT count(*) >= 0 AS fr_2004 FROM retention.set_regime('fr-2004');
\set SHOW_CONTEXT never
SET search_path = public;
SET client_min_messages = notice;

--------------------------------------------------------------------------
-- Windows compare with ceilings as calendar time (item 4)
--------------------------------------------------------------------------

-- lawful windows that interval comparison (a month = 30 days) refused
SELECT retention.set_window('billing', '364 days');
SELECT retention.set_window('billing', '365 days');
SELECT retention.set_window('billing', '12 months');
SELECT retention.set_window('network_security', '89 days');
SELECT purpose, "window" FROM retention.policy ORDER BY purpose;
-- windows that reach past the ceiling counted from some day
SELECT retention.set_window('billing', '366 days');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('network_security', '90 days');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('law_enforcement', '11 months 31 days');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('law_enforcement', '1 year 1 microsecond');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('law_enforcement', '6000 years');
\echo :LAST_ERROR_SQLSTATE
-- mixed signs are refused, whatever they add up to
SELECT retention.set_window('law_enforcement', '1000 years -359640 days');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('law_enforcement', '2 years -360 days');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('law_enforcement', '1 day -1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('law_enforcement', '-1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.set_window('law_enforcement', '0');
SELECT purpose, "window" FROM retention.policy ORDER BY purpose;
SELECT retention.set_window('billing', '1 year');
SELECT retention.set_window('law_enforcement', '1 year');
SELECT retention.set_window('network_security', '3 months');

-- the rules cap every window by its ceiling, however it was written
CREATE TABLE cal_le (id int, caller retention.msisdn(law_enforcement), ended_at timestamptz);
INSERT INTO cal_le VALUES (1, '33611111111', now() - interval '13 months'),
						  (2, '33611111112', now() - interval '11 months');
SELECT retention.protect('cal_le', 'ended_at');
UPDATE retention.window_setting SET "window" = '1000 years -359640 days'
 WHERE purpose = 'law_enforcement';
INSERT INTO retention.window_setting (purpose, "window")
	SELECT 'law_enforcement', '1000 years -359640 days'
	 WHERE NOT EXISTS (SELECT 1 FROM retention.window_setting WHERE purpose = 'law_enforcement');
SELECT "window" FROM retention.policy WHERE purpose = 'law_enforcement';
-- report() shows the window the rules apply
SELECT "column", "window" FROM retention.report() WHERE "table" = 'cal_le'::regclass AND kind = 'tagged';
CALL retention.sweep('cal_le');
SELECT id FROM cal_le ORDER BY id;
-- a row written late is due at once, too
INSERT INTO cal_le VALUES (3, '33611111113', now() - interval '366 days');
SELECT id FROM cal_le ORDER BY id;
UPDATE retention.window_setting SET "window" = '1 year' WHERE purpose = 'law_enforcement';
DROP TABLE cal_le;

--------------------------------------------------------------------------
-- A billing anchor counts up to ended_at + the billing ceiling (item 5)
--------------------------------------------------------------------------

CREATE TABLE cal_bill (id int, caller retention.msisdn(billing), ended_at timestamptz,
					   due_date timestamptz);
SELECT retention.protect('cal_bill', 'ended_at', subscriber => 'caller', billing_anchor => 'due_date');
CREATE ROLE regress_cal_writer LOGIN;
GRANT INSERT ON cal_bill TO regress_cal_writer;
SET ROLE regress_cal_writer;
-- ended two years ago: an anchor of infinity or of year 9999 keeps nothing
INSERT INTO cal_bill VALUES (1, '33611111111', now() - interval '2 years 1 day', 'infinity'),
							(2, '33611111112', now() - interval '2 years 1 day', '9999-12-31'),
	-- ended six months ago: kept, but from ended_at + 1 year at the latest
							(3, '33611111113', now() - interval '6 months', 'infinity'),
	-- a due date eleven months after the call is followed as it is
							(4, '33611111114', now() - interval '18 months', now() - interval '7 months');
RESET ROLE;
SELECT id, caller IS NOT NULL AS kept FROM cal_bill ORDER BY id;
SELECT kind, "column", rows_in_clear, note FROM retention.report()
 WHERE "table" = 'cal_bill'::regclass AND kind IN ('tagged', 'bounded anchor');
-- rows written before protection: verify() sees those whose bounded anchor
-- is past, and the sweep takes them
CREATE TABLE cal_bill_old (id int, caller retention.msisdn(billing), ended_at timestamptz,
						   due_date timestamptz);
INSERT INTO cal_bill_old VALUES (1, '33611111111', now() - interval '2 years 1 day', 'infinity'),
								(2, '33611111113', now() - interval '6 months', 'infinity');
SELECT retention.protect('cal_bill_old', 'ended_at', billing_anchor => 'due_date');
SELECT retention.verify();
CALL retention.sweep('cal_bill_old');
SELECT id FROM cal_bill_old;
DROP TABLE cal_bill_old;
SELECT retention._anchor_bounded('cal_bill'::regclass, now(), now() + interval '1 year') AS at_bound,
	   retention._anchor_bounded('cal_bill'::regclass, now(), now() + interval '1 year 1 second') AS past_it;

--------------------------------------------------------------------------
-- A completed row's deadlines cannot be postponed (item 6)
--------------------------------------------------------------------------

INSERT INTO cal_bill VALUES (5, '33611111115', now() - interval '1 month', now() + interval '1 month');
-- ended_at back to NULL, to infinity, later: refused
UPDATE cal_bill SET ended_at = NULL WHERE id = 5;
\echo :LAST_ERROR_SQLSTATE
UPDATE cal_bill SET ended_at = 'infinity' WHERE id = 5;
\echo :LAST_ERROR_SQLSTATE
UPDATE cal_bill SET ended_at = ended_at + interval '1 second' WHERE id = 5;
\echo :LAST_ERROR_SQLSTATE
-- the billing anchor later: refused
UPDATE cal_bill SET due_date = due_date + interval '1 day' WHERE id = 5;
\echo :LAST_ERROR_SQLSTATE
-- earlier: accepted, and applied at once
UPDATE cal_bill SET ended_at = ended_at - interval '1 day', due_date = due_date - interval '1 day' WHERE id = 5;
UPDATE cal_bill SET due_date = NULL WHERE id = 5;
SELECT id, ended_at < now() - interval '1 month' AS earlier, due_date FROM cal_bill WHERE id = 5;
-- an anchor set for the first time (the invoice comes after the call)
UPDATE cal_bill SET due_date = now() + interval '20 days' WHERE id = 5;
-- in progress: its end is not known yet, anything goes
INSERT INTO cal_bill VALUES (6, '33611111116', NULL, NULL);
UPDATE cal_bill SET ended_at = now() - interval '1 minute' WHERE id = 6;
UPDATE cal_bill SET ended_at = now() - interval '2 minutes' WHERE id = 6;
SELECT id, ended_at IS NOT NULL AS ended, due_date IS NOT NULL AS anchored FROM cal_bill WHERE id IN (5, 6) ORDER BY id;
-- an earlier end that makes the row due applies the rules at once
UPDATE cal_bill SET ended_at = now() - interval '3 years', due_date = NULL WHERE id = 6;
SELECT count(*) AS row_6_left FROM cal_bill WHERE id = 6;

-- an anchor set for the first time on a row already due without it does
-- not bring its data back: what was due stays due
CREATE TABLE cal_anchor_late (id int, caller retention.msisdn(billing),
							  cell retention.cell(law_enforcement),
							  ended_at timestamptz, due_date timestamptz);
INSERT INTO cal_anchor_late VALUES (1, '33611111118', '208-01-1-1', now() - interval '13 months', NULL);
SELECT retention.protect('cal_anchor_late', 'ended_at', billing_anchor => 'due_date');
UPDATE cal_anchor_late SET due_date = now();
SELECT id, caller, cell FROM cal_anchor_late;
DROP TABLE cal_anchor_late;

-- an end to come is refused as the row is written (more than two days
-- ahead of the server's clock), by INSERT or COPY, and when a call
-- completes; a little ahead (clock skew) is accepted
SET ROLE regress_cal_writer;
INSERT INTO cal_bill VALUES (7, '33611111117', 'infinity', NULL);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO cal_bill VALUES (7, '33611111117', now() + interval '3 days', NULL);
\echo :LAST_ERROR_SQLSTATE
COPY cal_bill FROM STDIN;
7	33611111117	9999-12-31	\N
\.
\echo :LAST_ERROR_SQLSTATE
INSERT INTO cal_bill VALUES (7, '33611111117', now() + interval '1 minute', NULL);
RESET ROLE;
INSERT INTO cal_bill VALUES (8, '33611111118', NULL, NULL);
UPDATE cal_bill SET ended_at = 'infinity' WHERE id = 8;
\echo :LAST_ERROR_SQLSTATE
SELECT id, ended_at IS NULL AS in_progress FROM cal_bill WHERE id IN (7, 8) ORDER BY id;
-- a table whose rows are changed before they are stored: the same
CREATE TABLE cal_nopurpose (caller retention.msisdn, ended_at timestamptz);
SELECT retention.protect('cal_nopurpose', 'ended_at');
INSERT INTO cal_nopurpose VALUES ('33611111119', 'infinity');
\echo :LAST_ERROR_SQLSTATE
DROP TABLE cal_nopurpose;

-- a partitioned table: a later end would move the row to another partition
CREATE TABLE cal_part (caller retention.msisdn(network_security), ended_at timestamptz)
	PARTITION BY RANGE (ended_at);
CREATE TABLE cal_part_old PARTITION OF cal_part FOR VALUES FROM (MINVALUE) TO ('2026-01-01');
CREATE TABLE cal_part_new PARTITION OF cal_part FOR VALUES FROM ('2026-01-01') TO (MAXVALUE);
SELECT retention.protect('cal_part', 'ended_at');
INSERT INTO cal_part VALUES ('33611111117', now() - interval '1 month');
UPDATE cal_part SET ended_at = 'infinity';
\echo :LAST_ERROR_SQLSTATE
UPDATE cal_part SET ended_at = ended_at - interval '1 day';
SELECT count(*) FROM cal_part;
DROP TABLE cal_part;

--------------------------------------------------------------------------
-- One zone decides for timestamp columns (item 7): retention.timezone, or
-- log_timezone; no session, role, database or client setting moves it
--------------------------------------------------------------------------

SHOW log_timezone;
SHOW retention.timezone;
CREATE TABLE cal_local (id int, caller retention.msisdn(network_security), ended_local timestamp);
SELECT retention.protect('cal_local', 'ended_local');
GRANT INSERT, SELECT ON cal_local TO regress_cal_writer;
-- the wall time, in retention's zone, of the network_security cutoff
-- plus or minus an hour: in the window, or an hour past it
CREATE FUNCTION cal_wall(shift interval) RETURNS timestamp LANGUAGE sql AS $$
	SELECT (((now() AT TIME ZONE 'UTC') - interval '3 months') AT TIME ZONE 'UTC' + shift)
		   AT TIME ZONE current_setting('log_timezone')
$$;
SELECT retention._instant(cal_wall('0')) = ((now() AT TIME ZONE 'UTC') - interval '3 months') AT TIME ZONE 'UTC'
	AS instant_in_log_timezone;
-- a session's own time zone
SET timezone = 'Asia/Tokyo';
INSERT INTO cal_local VALUES (1, '33611111111', cal_wall('1 hour')), (2, '33611111112', cal_wall('-1 hour'));
SELECT retention._instant(cal_wall('0')) = ((now() AT TIME ZONE 'UTC') - interval '3 months') AT TIME ZONE 'UTC'
	AS same_instant;
RESET timezone;
-- a role's and a database's: they change the session's reset value
-- (pg_regress's PGTZ, a client's setting, would override them)
\getenv regress_pgtz PGTZ
\setenv PGTZ
ALTER ROLE regress_cal_writer SET timezone = 'Etc/GMT+12';
\c - regress_cal_writer
SET search_path = public;
SHOW timezone;
INSERT INTO cal_local VALUES (3, '33611111113', cal_wall('1 hour')), (4, '33611111114', cal_wall('-1 hour'));
\c - postgres
SET search_path = public;
ALTER ROLE regress_cal_writer RESET timezone;
ALTER DATABASE :"DBNAME" SET timezone = 'Pacific/Kiritimati';
\c - regress_cal_writer
SET search_path = public;
SHOW timezone;
INSERT INTO cal_local VALUES (5, '33611111115', cal_wall('1 hour')), (6, '33611111116', cal_wall('-1 hour'));
\setenv PGTZ :regress_pgtz
\c - postgres
SET search_path = public;
\set SHOW_CONTEXT never
ALTER DATABASE :"DBNAME" RESET timezone;
-- the odd ids, an hour inside their window, stay; the even ones went
SELECT id FROM cal_local ORDER BY id;
-- the sweep, report() and verify() read them in the same zone, whatever
-- the session's
INSERT INTO cal_local VALUES (7, '33611111117', cal_wall('10 minutes'));
SET timezone = 'Etc/GMT+12';
SELECT "column", rows_in_clear, overdue_rows,
	   oldest_clear = (SELECT retention._instant(min(ended_local)) FROM cal_local) AS oldest_in_its_zone
  FROM retention.report() WHERE "table" = 'cal_local'::regclass AND kind = 'tagged';
SELECT retention.verify();
SET timezone = 'Pacific/Kiritimati';
CALL retention.sweep('cal_local');
SELECT id FROM cal_local ORDER BY id;
-- a purpose's view shows the rows the rules keep, in any reader's zone
SELECT retention.expose('cal_local', 'network_security', 'regress_cal_writer');
SET ROLE regress_cal_writer;
SET timezone = 'Pacific/Kiritimati';
SELECT id FROM cal_local_network_security ORDER BY id;
SET timezone = 'Etc/GMT+12';
SELECT id FROM cal_local_network_security ORDER BY id;
RESET ROLE;
RESET timezone;
SELECT retention.unexpose('cal_local', 'network_security', 'regress_cal_writer');
DROP TABLE cal_local;
DROP FUNCTION cal_wall(interval);

--------------------------------------------------------------------------
-- The dry run has the rights of the sweep; a failed sweep logs no value;
-- holds and consents have a term (item 21)
--------------------------------------------------------------------------

CREATE ROLE regress_cal_admin IN ROLE retention_admin;
SET ROLE regress_cal_admin;
CALL retention.sweep('cal_bill', dry_run => true);
RESET ROLE;

-- a CHECK constraint that erasing violates: the warning names the
-- constraint, never the row
CREATE TABLE cal_check (id int, caller retention.msisdn(network_security),
						callee retention.msisdn(billing), ended_at timestamptz,
						CONSTRAINT cal_check_caller CHECK (caller IS NOT NULL));
SELECT retention.protect('cal_check', 'ended_at');
INSERT INTO cal_check VALUES (1, '33611111111', '33699999999', now() - interval '6 months');
CALL retention.sweep('cal_check');
SELECT status, error FROM retention.sweep_log WHERE relid = 'cal_check'::regclass;
SET ROLE regress_cal_admin;
CALL retention.sweep('cal_check', dry_run => true);
RESET ROLE;
DROP TABLE cal_check;

-- holds: the order sets its term (no maximum), an end is a date
INSERT INTO retention.hold (relid, subscriber, from_ts, to_ts, reason, reference, until, placed_at)
	VALUES ('cal_bill', '33611111113', '2025-01-01', '2025-12-31', 'quick_freeze', 'QF-FIXED',
			'2027-01-01 00:00:01+00', '2026-01-01 00:00:00+00');
\set VERBOSITY terse
SELECT retention.hold('cal_bill', '33611111113', now() - interval '1 year', now(), 'quick_freeze',
					  'QF-INF', until => 'infinity', authority => 'TJ Paris');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.hold('cal_bill', '33611111113', now() - interval '1 year', now(), 'judicial_request',
					  'PV-200000', until => '200000-01-01') > 0 AS placed;
SELECT retention.hold('cal_bill', '33611111113', now() - interval '1 year', now(), 'judicial_request',
					  'PV-13M', until => now() + interval '13 months') > 0 AS placed;
SELECT retention.hold('cal_bill', '33611111113', now() - interval '1 year', now(), 'billing_dispute',
					  'INV-INF', until => 'infinity');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.hold('cal_bill', '33611111113', now() - interval '1 year', now(), 'judicial_request',
					  'PV-11M', until => now() + interval '11 months') > 0 AS placed;
SELECT retention.hold('cal_bill', '33611111113', now() - interval '1 year', now(), 'billing_dispute',
					  'INV-OPEN') > 0 AS placed;
SET timezone = 'Europe/Paris';
SELECT retention.hold('cal_bill', '33611111113', now() - interval '1 year', now(), 'quick_freeze',
					  'QF-1Y', until => now() + interval '1 year', authority => 'TJ Paris') > 0 AS placed;
RESET timezone;
-- directly, as a superuser: the same
INSERT INTO retention.hold (relid, subscriber, from_ts, to_ts, reason, reference, until)
	VALUES ('cal_bill', '33611111113', '-infinity', 'infinity', 'quick_freeze', 'QF-DIRECT', 'infinity');
\echo :LAST_ERROR_SQLSTATE
UPDATE retention.hold SET until = until + interval '1 year' WHERE reference = 'PV-11M';
SELECT reference FROM retention.hold WHERE relid = 'cal_bill'::regclass ORDER BY id;
-- consents: at most three years
\set VERBOSITY default
INSERT INTO retention.consent (subscriber, valid_until, contract_end, granted_at)
	VALUES ('33611111119', '2029-01-01 00:00:01+00', 'infinity', '2026-01-01 00:00:00+00');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SELECT retention.grant_consent('33611111113', '200000-01-01', 'infinity');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.grant_consent('33611111113', now() + interval '3 years 1 day', 'infinity');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.grant_consent('33611111113', now() + interval '2 years', 'infinity');
INSERT INTO retention.consent (subscriber, valid_until, contract_end)
	VALUES ('33611111119', '200000-01-01', 'infinity');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT subscriber FROM retention.consent WHERE subscriber LIKE '3361111111%' ORDER BY 1;
SELECT retention.withdraw_consent('33611111113');
UPDATE retention.hold SET released_at = now() WHERE relid = 'cal_bill'::regclass;
DELETE FROM retention.consent WHERE subscriber = '33611111113';

DROP TABLE cal_bill;
DROP ROLE regress_cal_writer;
DROP ROLE regress_cal_admin;

SELECT count(*) >= 0 AS fr_2025 FROM retention.set_regime('fr-2025');
