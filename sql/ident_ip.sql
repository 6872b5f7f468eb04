--
-- generalize on ident (issue 17 item 5): an IP address keeps its /24
-- (IPv4) or /48 (IPv6) prefix, as connection data kept for statistics;
-- any other identifier has no coarser form and is erased.  inet and cidr
-- columns become idents by ALTER COLUMN ... TYPE alone.
--
\set SHOW_CONTEXT never
\set VERBOSITY verbose
SET search_path = public;
SET client_min_messages = warning;

SELECT v AS ident, retention.anonymize(v::retention.ident, 'generalize') AS generalized,
	   retention._anonymized(v, 'retention.ident') AS anonymized_before,
	   retention._anonymized(retention.anonymize(v::retention.ident, 'generalize'), 'retention.ident') AS anonymized_after
  FROM (VALUES ('192.0.2.77'), ('192.0.2.77/32'), ('192.0.2.0/24'), ('10.1.0.0/16'), ('10.1.2.3/16'),
			   ('2001:db8:1234:5678::1'), ('2001:db8:1234::/48'), ('2001:db8::/32'), ('fe80::1/128'),
			   ('::ffff:192.0.2.1'), ('sip:alice@example.net'), ('sip:alice@192.0.2.1'), ('12345'),
			   ('192.0.2'), ('192.0.2.256'), ('00-11-22-33-44-55'), ('alice'), ('')) t(v);
-- a pseudonym has nothing left to generalize
SELECT retention.anonymize(retention.anonymize('192.0.2.77'::retention.ident, 'hash'), 'generalize') AS pseudonym;
-- generalize is idempotent
SELECT retention.anonymize(retention.anonymize('2001:db8:1234:5678::1'::retention.ident, 'generalize'),
						   'generalize') AS twice;

CREATE ROLE regress_ip_owner;
GRANT CREATE ON SCHEMA public TO regress_ip_owner;
SET ROLE regress_ip_owner;
-- an inet column, as FreeRADIUS declares its framed addresses
CREATE TABLE ipacct (id int, framed inet, caller text NOT NULL DEFAULT '', stop timestamptz);
INSERT INTO ipacct VALUES (1, '192.0.2.77', 'sip:alice@example.net', now() - interval '2 years'),
						  (2, '2001:db8:1234:5678::1', '00-11-22-33-44-55', now() - interval '2 years'),
						  (3, '198.51.100.7', 'bob', now() - interval '1 day');
ALTER TABLE ipacct ALTER COLUMN framed TYPE retention.ident(law_enforcement),
				   ALTER COLUMN caller TYPE retention.ident(law_enforcement);
-- the writer's own statements keep working: inet into an ident column
INSERT INTO ipacct VALUES (4, NULLIF('203.0.113.9', '')::inet, '', now() - interval '2 years');
UPDATE ipacct SET framed = '203.0.113.10'::inet WHERE id = 4;
INSERT INTO ipacct VALUES (5, NULLIF('', '')::inet, '', NULL);
RESET ROLE;
SELECT retention.protect('ipacct', 'stop', on_expiry => 'anonymize');
SELECT retention.set_method('ipacct', 'framed', 'generalize');
SELECT retention.set_method('ipacct', 'caller', 'generalize');
SELECT m.attname, m.method FROM retention.column_method m WHERE m.relid = 'ipacct'::regclass ORDER BY 1;
CALL retention.sweep();
SELECT id, framed, caller, caller = '' AS caller_erased FROM ipacct ORDER BY id;
SELECT "column", rows_in_clear, overdue_rows FROM retention.report()
 WHERE "table" = 'ipacct'::regclass AND kind = 'tagged' ORDER BY 1;
SELECT retention.verify();
-- a late record is generalized on its way in
INSERT INTO ipacct VALUES (6, '192.0.2.200'::inet, '192.0.2.200', now() - interval '2 years');
SELECT id, framed, caller FROM ipacct WHERE id = 6;
-- a generalized prefix is not personal in a copy either
CREATE TABLE ipcopy AS SELECT framed FROM ipacct WHERE framed IS NOT NULL AND id <> 3;
SELECT "column", rows_in_clear FROM retention.report() WHERE "table" = 'ipcopy'::regclass;
DROP TABLE ipcopy;

DELETE FROM retention.write_log WHERE relid::text LIKE 'ip%';
DROP TABLE ipacct;
REVOKE CREATE ON SCHEMA public FROM regress_ip_owner;
DROP ROLE regress_ip_owner;
