--
-- Method hash is no pseudonym oracle, and a consent withdrawal never fails
--
-- A role that may not call hash itself must not obtain the pseudonym of a
-- value of its choosing by writing it into a hashed column and reading it
-- back: not at write time (INSERT, UPDATE, making a stored row due), not
-- from inside a sweep (its own trigger), not a sweep later (set_method()
-- refuses such a column, verify() names it).
--
\set SHOW_CONTEXT never
SET datestyle = 'ISO, YMD';

CREATE ROLE regress_oracle_writer;
CREATE TABLE oracle_cdr (
	id			integer PRIMARY KEY,
	caller		retention.msisdn(billing),
	imsi		retention.imsi(network_security),
	ended_at	timestamptz
);
SELECT retention.protect('oracle_cdr', 'ended_at', subscriber => 'caller');
SELECT retention.set_method('oracle_cdr', 'imsi', 'hash');
-- a row that rested in the table until its network_security deadline (3
-- months) passed: the sweep hashes it, the caller is kept for billing
INSERT INTO oracle_cdr VALUES (1, '33611110001', '208011234567890', now() - interval '1 month');
SELECT retention.set_window('network_security', '2 weeks');
CALL retention.sweep();
SELECT id, imsi = retention.anonymize('208011234567890'::retention.imsi, 'hash') AS hashed_by_the_sweep
  FROM oracle_cdr;
SELECT retention.set_window('network_security', '3 months');

-- a writer who may read the table back: every write-time path erases
GRANT INSERT, UPDATE, SELECT ON oracle_cdr TO regress_oracle_writer;
SET ROLE regress_oracle_writer;
-- 1. a row already due when inserted
INSERT INTO oracle_cdr VALUES (2, '33611110002', '208019999999991', now() - interval '6 months');
-- 2. a chosen value written over a stored row already past the deadline
UPDATE oracle_cdr SET imsi = '208019999999992' WHERE id = 2;
-- 3. a row in its window, then its end moved back past the deadline
INSERT INTO oracle_cdr VALUES (3, '33611110003', '208019999999993', now());
UPDATE oracle_cdr SET ended_at = now() - interval '6 months' WHERE id = 3;
SELECT id, CASE WHEN imsi IS NULL THEN 'erased' WHEN imsi::text LIKE '~k%' THEN 'pseudonym'
				ELSE imsi::text END AS imsi, caller
  FROM oracle_cdr ORDER BY id;
RESET ROLE;

-- 4. from inside a sweep: the owner's own trigger writes while the sweep
-- rewrites a row; what it writes is erased, not hashed
CREATE FUNCTION oracle_plant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.id = 10 THEN
		INSERT INTO public.oracle_cdr VALUES (11, '33611110011', '208019999999911', now() - interval '6 months');
		UPDATE public.oracle_cdr SET imsi = '208019999999912', ended_at = now() - interval '6 months' WHERE id = 12;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER oracle_plant AFTER UPDATE ON oracle_cdr FOR EACH ROW EXECUTE FUNCTION oracle_plant();
INSERT INTO oracle_cdr VALUES (10, '33611110010', '208011234567810', now() - interval '1 month'),
							  (12, '33611110012', NULL, now());
SELECT retention.set_window('network_security', '2 weeks');
CALL retention.sweep('oracle_cdr');
SELECT retention.set_window('network_security', '3 months');
SELECT id, imsi IS NULL AS erased,
	   imsi = retention.anonymize(
		   CASE id WHEN 10 THEN '208011234567810' WHEN 11 THEN '208019999999911'
				   ELSE '208019999999912' END::retention.imsi, 'hash') AS hashed
  FROM oracle_cdr WHERE id >= 10 ORDER BY id;
DROP TRIGGER oracle_plant ON oracle_cdr;

-- 5. a sweep later: a writer who can read the column back makes the column
-- unfit for hash; set_method() refuses it, and verify() names it
SELECT retention.set_method('oracle_cdr', 'imsi', 'erase');
SELECT retention.set_method('oracle_cdr', 'imsi', 'hash');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM retention._pseudonym_oracles('oracle_cdr', 'imsi');
-- reading through a member role or through PUBLIC counts too
REVOKE SELECT ON oracle_cdr FROM regress_oracle_writer;
SELECT * FROM retention._pseudonym_oracles('oracle_cdr', 'imsi');
CREATE ROLE regress_oracle_reader;
GRANT SELECT (imsi) ON oracle_cdr TO regress_oracle_reader;
GRANT regress_oracle_reader TO regress_oracle_writer;
SELECT * FROM retention._pseudonym_oracles('oracle_cdr', 'imsi');
REVOKE regress_oracle_reader FROM regress_oracle_writer;
GRANT SELECT (imsi) ON oracle_cdr TO PUBLIC;
SELECT * FROM retention._pseudonym_oracles('oracle_cdr', 'imsi');
REVOKE SELECT (imsi) ON oracle_cdr FROM PUBLIC;
-- reading another column is no oracle; nor is a writer who may hash anyway
GRANT SELECT (caller) ON oracle_cdr TO regress_oracle_writer;
SELECT count(*) AS oracles FROM retention._pseudonym_oracles('oracle_cdr', 'imsi');
GRANT SELECT ON oracle_cdr TO regress_oracle_writer;
GRANT retention_admin TO regress_oracle_writer;
SELECT count(*) AS oracles FROM retention._pseudonym_oracles('oracle_cdr', 'imsi');
SELECT retention.set_method('oracle_cdr', 'imsi', 'hash');
-- a grant after set_method(): report() and verify() name the column and
-- the role
REVOKE retention_admin FROM regress_oracle_writer;
SELECT * FROM retention._pseudonym_oracles();
SELECT kind, note FROM retention.report()
 WHERE "table" = 'oracle_cdr'::regclass AND kind = 'not enforced';
SELECT retention.verify();
\echo :LAST_ERROR_SQLSTATE
-- an owner is a writer who reads
REVOKE ALL ON oracle_cdr FROM regress_oracle_writer;
ALTER TABLE oracle_cdr OWNER TO regress_oracle_writer;
SELECT * FROM retention._pseudonym_oracles();
ALTER TABLE oracle_cdr OWNER TO CURRENT_USER;
SELECT count(*) AS oracles FROM retention._pseudonym_oracles();
SELECT retention.unprotect('oracle_cdr');
DROP TABLE oracle_cdr;
DROP FUNCTION oracle_plant();
DROP ROLE regress_oracle_writer, regress_oracle_reader;

--
-- withdraw_consent(): recorded whatever the tables say
--
CREATE TABLE consent_msisdn (caller retention.msisdn(billing), offer retention.ident(marketing),
							 ended_at timestamptz);
CREATE TABLE consent_imsi (imsi retention.imsi(marketing, billing), ended_at timestamptz);
SELECT retention.protect('consent_msisdn', 'ended_at', subscriber => 'caller');
SELECT retention.protect('consent_imsi', 'ended_at', subscriber => 'imsi');
SELECT retention.grant_consent('33622220001', now() + interval '1 month', now() + interval '1 year');
INSERT INTO consent_msisdn VALUES ('33622220001', 'offer-1', now() - interval '1 day');
INSERT INTO consent_imsi VALUES ('208012222000100', now() - interval '1 day');
-- the IMSI table cannot hold an MSISDN: the withdrawal still happens, and
-- says which tables it could not match
SELECT retention.withdraw_consent('33622220001');
SELECT subscriber, withdrawn_at IS NOT NULL AS withdrawn FROM retention.consent
 WHERE subscriber = '33622220001';
SELECT caller, offer FROM consent_msisdn;
SELECT details FROM retention.audit_log WHERE action = 'withdraw_consent' ORDER BY id DESC LIMIT 1;
-- a table that fails is left to the next sweep; the withdrawal stands
SELECT retention.grant_consent('33622220001', now() + interval '1 month', now() + interval '1 year');
INSERT INTO consent_msisdn VALUES ('33622220001', 'offer-2', now() - interval '1 day');
CREATE FUNCTION consent_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'refused: %', NEW.caller;
END
$$;
CREATE TRIGGER consent_refuse BEFORE UPDATE OR DELETE ON consent_msisdn
	FOR EACH ROW EXECUTE FUNCTION consent_refuse();
SELECT retention.withdraw_consent('33622220001');
SELECT withdrawn_at IS NOT NULL AS withdrawn FROM retention.consent WHERE subscriber = '33622220001';
SELECT details FROM retention.audit_log WHERE action = 'withdraw_consent' ORDER BY id DESC LIMIT 1;
DROP TRIGGER consent_refuse ON consent_msisdn;
DROP FUNCTION consent_refuse();
SELECT caller, offer FROM consent_msisdn;
CALL retention.sweep('consent_msisdn');
SELECT caller, offer FROM consent_msisdn;
SELECT retention.unprotect('consent_msisdn');
SELECT retention.unprotect('consent_imsi');
DROP TABLE consent_msisdn, consent_imsi;
DELETE FROM retention.consent;
