--
-- The definition of a purpose view (SPEC 3.10), as PostgreSQL deparses it.
-- Newer releases no longer qualify the columns of the query's only table,
-- so this file has two expected outputs: expose_view.out (PostgreSQL 15)
-- and expose_view_1.out (17, 18); pg_regress accepts either.  Everything
-- else about purpose views is in expose.sql, in one form for all releases.
--
SET search_path = public;
CREATE TABLE cdr_view (
	id			integer PRIMARY KEY,
	caller		retention.msisdn(billing, law_enforcement),
	callee		retention.msisdn(billing),
	cell		retention.cell(network_security),
	ended_at	timestamptz,
	duration	integer
);
SELECT retention.protect('cdr_view', 'ended_at', subscriber => 'caller');
CREATE ROLE regress_view_billing;
SELECT retention.expose('cdr_view', 'billing', to_role => 'regress_view_billing');
\d+ cdr_view_billing

SELECT retention.unprotect('cdr_view');
DROP TABLE cdr_view CASCADE;
DROP ROLE regress_view_billing;
RESET search_path;
