--
-- Purpose-bound access (SPEC 3.10)
--
-- written for 1.0's rules: regime fr-2004 (sql/regimes.sql tests fr-2025)
SELECT count(*) >= 0 AS fr_2004 FROM retention.set_regime('fr-2004');
\set SHOW_CONTEXT never
SET search_path = public;
SELECT coalesce(max(id), 0) AS audit0 FROM retention.audit_log \gset
SELECT coalesce(max(id), 0) AS sweep0 FROM retention.sweep_log \gset

CREATE TABLE cdr (
	id			integer PRIMARY KEY,
	caller		retention.msisdn(billing, law_enforcement),
	callee		retention.msisdn(billing),
	imei		retention.imei(law_enforcement),
	cell		retention.cell(network_security),
	promo_cell	retention.cell(marketing),
	msisdn_mkt	retention.msisdn(marketing),
	ended_at	timestamptz,
	duration	integer
);
SELECT retention.protect('cdr', 'ended_at', subscriber => 'caller');
SET session_replication_role = replica;		-- history, written before protection
INSERT INTO cdr SELECT i, '3361111111' || (i % 2), '33622222222', '490154203237518', '208-01-1-' || i,
					   '208-01-2-' || i, '3361111111' || (i % 2), now() - i * interval '2 months', 60 + i
  FROM generate_series(0, 8) i;
INSERT INTO cdr VALUES (99, '33611111110', '33622222222', NULL, NULL, NULL, NULL, NULL, NULL);	-- in progress
RESET session_replication_role;

CREATE ROLE regress_billing;
CREATE ROLE regress_police;
CREATE ROLE regress_marketing;
SELECT retention.expose('cdr', 'billing', to_role => 'regress_billing');
SELECT retention.expose('cdr', 'law_enforcement', to_role => 'regress_police');
SELECT retention.expose('cdr', 'marketing', to_role => 'regress_marketing');
\d cdr_billing
SELECT relname, reloptions FROM pg_class WHERE relname LIKE 'cdr\_%' ORDER BY 1;

-- each role sees its purpose's columns, non-personal columns, and rows
-- whose window for the purpose is open; nothing else
SET ROLE regress_billing;
SELECT id, caller, callee, duration FROM cdr_billing ORDER BY id;
SELECT * FROM cdr;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM cdr_law_enforcement;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_police;
SELECT id, caller, imei FROM cdr_law_enforcement ORDER BY id;
RESET ROLE;
-- marketing: only subscribers who consented
SET ROLE regress_marketing;
SELECT count(*) AS without_consent FROM cdr_marketing;
RESET ROLE;
SELECT retention.grant_consent('33611111111', now() + interval '3 months', now() + interval '2 years');
SET ROLE regress_marketing;
SELECT id, promo_cell, msisdn_mkt, duration FROM cdr_marketing ORDER BY id;
RESET ROLE;

-- a window change applies to the views at once
SELECT retention.set_window('billing', '3 months');
SET ROLE regress_billing;
SELECT id FROM cdr_billing ORDER BY id;
RESET ROLE;
SELECT retention.set_window('billing', '1 year');

-- rows under a billing dispute stay visible for billing
SELECT retention.hold('cdr', '33611111110', now() - interval '3 years', now(), 'billing_dispute', 'INV-7') AS h \gset
SET ROLE regress_billing;
SELECT id FROM cdr_billing WHERE caller = '33611111110' ORDER BY id;
RESET ROLE;
SELECT retention.release(:h);

-- the views follow column changes
ALTER TABLE cdr ADD COLUMN imsi retention.imsi(billing), ADD COLUMN network text;
ALTER TABLE cdr ALTER COLUMN callee TYPE retention.msisdn(law_enforcement);
SELECT attname FROM pg_attribute WHERE attrelid = 'cdr_billing'::regclass AND attnum > 0 ORDER BY attnum;
SELECT attname FROM pg_attribute WHERE attrelid = 'cdr_law_enforcement'::regclass AND attnum > 0 ORDER BY attnum;
SET ROLE regress_billing;
SELECT count(*) FROM cdr_billing;
RESET ROLE;

-- a second role for the same purpose shares the view
CREATE ROLE regress_billing2;
SELECT retention.expose('cdr', 'billing', 'regress_billing2');
SET ROLE regress_billing2;
SELECT count(*) FROM cdr_billing;
RESET ROLE;
SELECT retention.unexpose('cdr', 'billing', 'regress_billing2');
SET ROLE regress_billing2;
SELECT count(*) FROM cdr_billing;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- errors
SELECT retention.expose('cdr', 'advertising', 'regress_billing');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.expose('cdr', 'billing', 'regress_nobody');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.expose('cdr', 'billing', 'regress_billing');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.expose('pg_class', 'billing', 'regress_billing');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.unexpose('cdr', 'network_security', 'regress_billing');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE cdr_network_security (x int);
SELECT retention.expose('cdr', 'network_security', 'regress_billing');
\echo :LAST_ERROR_SQLSTATE
DROP TABLE cdr_network_security;
SET ROLE regress_billing;
SELECT retention.expose('cdr', 'network_security', 'regress_billing');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- audited; unexpose drops the view
SELECT action, details FROM retention.audit_log WHERE action IN ('expose', 'unexpose') AND id > :audit0 ORDER BY id;
SELECT retention.unexpose('cdr', 'billing', 'regress_billing');
SELECT retention.unexpose('cdr', 'law_enforcement', 'regress_police');
SELECT retention.unexpose('cdr', 'marketing', 'regress_marketing');
SELECT count(*) AS views_left FROM pg_class WHERE relname LIKE 'cdr\_%' AND relkind = 'v';

SELECT retention.withdraw_consent('33611111111');
SELECT retention.unprotect('cdr');
DROP TABLE cdr;
DROP ROLE regress_billing, regress_billing2, regress_police, regress_marketing;
DELETE FROM retention.consent;
DELETE FROM retention.hold;
RESET search_path;
SELECT count(*) >= 0 AS fr_2025 FROM retention.set_regime('fr-2025');
