--
-- Citus: fail closed (issue 18, item 1).  Without Citus, nothing changes:
-- retention._citus_present() is false and protect(), report(), verify()
-- and the sweep behave as before.  Then Citus's metadata is simulated
-- (pg_dist_partition and pg_dist_shard with the columns retention reads,
-- as Citus 13 has them): a table that Citus manages is refused by
-- protect(), shows in report() as 'not enforced', makes verify() raise,
-- and fails its sweep.  test/t/030_citus.pl does the same on a real
-- cluster.  In a database of its own, so that report() and verify() see
-- only this test's tables.
--
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_citus;
\c regress_citus
CREATE EXTENSION retention CASCADE;
\set SHOW_CONTEXT never
SET client_min_messages = notice;

CREATE TABLE cdr (id bigint PRIMARY KEY, caller retention.msisdn(billing),
				  cell retention.cell(network_security), ended_at timestamptz);
INSERT INTO cdr SELECT i, '336' || lpad(i::text, 8, '0'), '208-01-1-' || i, now() - interval '1 day'
  FROM generate_series(1, 10) i;

-- no Citus: nothing to say
SELECT retention._citus_present();
SELECT retention._citus_problem('cdr'), retention._citus_version_problem();
SELECT count(*) FROM retention._citus_problems();
SELECT retention.protect('cdr', 'ended_at', subscriber => 'caller');
SELECT "table", "column", kind, rows_in_clear, overdue_rows, note FROM retention.report();
SELECT retention.verify();
CALL retention.sweep();
SELECT relid, status, error FROM retention.sweep_log ORDER BY id;

-- Citus's metadata, as a superuser could fake it; empty, it changes nothing
SET allow_system_table_mods = on;
CREATE TABLE pg_catalog.pg_dist_partition (logicalrelid regclass NOT NULL, partmethod "char" NOT NULL,
										   partkey text, colocationid integer NOT NULL,
										   repmodel "char" NOT NULL);
CREATE TABLE pg_catalog.pg_dist_shard (logicalrelid regclass NOT NULL, shardid bigint NOT NULL);
CREATE TABLE pg_catalog.pg_dist_placement (shardid bigint NOT NULL, groupid integer NOT NULL);
CREATE TABLE pg_catalog.pg_dist_local_group (groupid integer NOT NULL);
INSERT INTO pg_catalog.pg_dist_local_group VALUES (1);
RESET allow_system_table_mods;
SELECT retention._citus_present();
SELECT retention._citus_problem('cdr');
SELECT count(*) FROM retention._citus_problems();
SELECT retention.verify();

-- cdr, protected, then distributed by id (create_distributed_table() is a
-- function call: no event trigger sees it)
INSERT INTO pg_catalog.pg_dist_partition VALUES
	('cdr', 'h', '{VAR :varno 1 :varattno 1 :vartype 20 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 1 :varattnosyn 1 :location -1}', 1, 's');
SELECT retention._citus_problem('cdr');
-- its counts would be of the coordinator's shell: not shown, the reason is
SELECT "table", "column", kind, rows_in_clear, overdue_rows, note FROM retention.report();
SELECT metric, value FROM retention.metrics WHERE metric = 'not_enforced';
SELECT retention.verify();
\echo :LAST_ERROR_SQLSTATE
-- the sweep fails the table, with the reason, and claims no work
CALL retention.sweep();
SELECT relid, status, rows_deleted, rows_anonymized, error FROM retention.sweep_log ORDER BY id;
CALL retention.sweep(dry_run => true);
SELECT action, object, details->>'status' AS status FROM retention.audit_log
 WHERE action = 'sweep' ORDER BY id;
-- nor does a subject's request reach its rows
SELECT * FROM retention.anonymize('cdr'::regclass, '33600000001');
\echo :LAST_ERROR_SQLSTATE
-- nor is it exposed: the view would show what no sweep clears
CREATE ROLE regress_citus_billing;
SELECT retention.expose('cdr', 'billing', 'regress_citus_billing');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM retention.exposure;
DROP ROLE regress_citus_billing;
-- a withdrawal of consent is recorded, and names the tables whose
-- marketing data it cannot reach, saying that no sweep will either
CREATE TABLE promo (id bigint, caller retention.msisdn(billing), promo_cell retention.cell(marketing),
					ended_at timestamptz);
SELECT retention.protect('promo', 'ended_at', subscriber => 'caller');
SELECT retention.grant_consent('33600000001', now() + interval '1 month', now() + interval '1 year');
INSERT INTO promo VALUES (1, '33600000001', '208-01-1-1', now() - interval '1 day');
INSERT INTO pg_catalog.pg_dist_partition VALUES
	('promo', 'h', '{VAR :varno 1 :varattno 1 :vartype 20 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 1 :varattnosyn 1 :location -1}', 1, 's');
SELECT retention.withdraw_consent('33600000001');
SELECT subscriber, withdrawn_at IS NOT NULL AS withdrawn FROM retention.consent;
SELECT details FROM retention.audit_log WHERE action = 'withdraw_consent';
-- unprotect() lets Citus drop a distributed table's triggers (Citus asks
-- for citus.enable_unsafe_triggers), for its own statement only
BEGIN;
SELECT retention.unprotect('promo');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'promo'::regclass;
SELECT current_setting('citus.enable_unsafe_triggers', true) AS unsafe_triggers;
COMMIT;
DELETE FROM pg_catalog.pg_dist_partition WHERE logicalrelid = 'promo'::regclass;
DROP TABLE promo;

-- protect() refuses every kind of table Citus manages
CREATE TABLE dist (id bigint, caller retention.msisdn(billing), ended_at timestamptz);
CREATE TABLE ref (id bigint, caller retention.msisdn(billing), ended_at timestamptz);
CREATE TABLE loc (id bigint, caller retention.msisdn(billing), ended_at timestamptz);
CREATE TABLE single (id bigint, caller retention.msisdn(billing), ended_at timestamptz);
INSERT INTO pg_catalog.pg_dist_partition VALUES
	('dist', 'h', '{VAR :varno 1 :varattno 2 :vartype 20 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 1 :varattnosyn 2 :location -1}', 1, 's'),
	('ref', 'n', NULL, 2, 't'),
	('loc', 'n', NULL, 0, 's'),
	('single', 'n', NULL, 3, 's');
SELECT retention.protect('dist', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('ref', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('loc', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
SELECT retention.protect('single', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
-- a shard: <table>_<shardid>, in its table's schema, placed on this node
CREATE TABLE cdr_102008 (LIKE cdr);
INSERT INTO pg_catalog.pg_dist_shard VALUES ('cdr', 102008), ('cdr', 102010);
INSERT INTO pg_catalog.pg_dist_placement VALUES (102008, 1), (102010, 2);
SELECT retention.protect('cdr_102008', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
-- a long name: Citus cuts it short and puts a hash of it before the id
CREATE TABLE cdr_of_a_very_long_name_that_leaves_no_room_for_the_shard_id (LIKE cdr);
SELECT format('%s_%s_102009', left('cdr_of_a_very_long_name_that_leaves_no_room_for_the_shard_id', 47),
			  lpad(to_hex(hashtext('cdr_of_a_very_long_name_that_leaves_no_room_for_the_shard_id')), 8, '0')) AS long_shard \gset
SELECT :'long_shard';
CREATE TABLE :"long_shard" (LIKE cdr);
INSERT INTO pg_catalog.pg_dist_partition VALUES
	('cdr_of_a_very_long_name_that_leaves_no_room_for_the_shard_id', 'n', NULL, 2, 't');
INSERT INTO pg_catalog.pg_dist_shard VALUES ('cdr_of_a_very_long_name_that_leaves_no_room_for_the_shard_id', 102009);
INSERT INTO pg_catalog.pg_dist_placement VALUES (102009, 1);
SELECT retention.protect(:'long_shard', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
-- not shards: another hash, a shard placed on another node, another
-- shard id, another schema, another name
CREATE TABLE cdr_of_a_very_long_name_that_leaves_no_ro_00000000_102009 (LIKE cdr);
CREATE TABLE cdr_102010 (LIKE cdr);
CREATE TABLE cdr_102011 (LIKE cdr);
CREATE SCHEMA other;
CREATE TABLE other.cdr_102008 (LIKE cdr);
CREATE TABLE cdx_102008 (LIKE cdr);
SELECT retention._citus_problem('cdr_of_a_very_long_name_that_leaves_no_ro_00000000_102009') AS a,
	   retention._citus_problem('cdr_102010') AS b, retention._citus_problem('cdr_102011') AS c,
	   retention._citus_problem('other.cdr_102008') AS d, retention._citus_problem('cdx_102008') AS e;
SELECT retention.protect('other.cdr_102008', 'ended_at');
SELECT retention.unprotect('other.cdr_102008');
-- a local partitioned table whose partition Citus manages
CREATE TABLE part (id bigint, caller retention.msisdn(billing), ended_at timestamptz) PARTITION BY RANGE (ended_at);
CREATE TABLE part_2026 PARTITION OF part FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO pg_catalog.pg_dist_partition VALUES ('part_2026', 'n', NULL, 0, 's');
SELECT retention._citus_problem('part');
SELECT retention.protect('part', 'ended_at');
\echo :LAST_ERROR_SQLSTATE

-- the triggers Citus copies to the shards of a table protected, then
-- distributed (as it makes them, here by hand, named after the shard id)
-- find the shard's table from
-- the metadata: by the shard's name and its placement on this node, never
-- by its OID.  Where this node protects the table (cdr), the shard is
-- enforced as a partition of it is; where it does not (dist, as on a
-- worker), every write is refused, never stored with nothing expired.
CREATE TABLE cdr_102012 (LIKE cdr);
CREATE TABLE dist_102013 (LIKE dist);
INSERT INTO pg_catalog.pg_dist_shard VALUES ('cdr', 102012), ('dist', 102013);
DO $$
DECLARE
	t record;
	shard text;
BEGIN
	FOREACH shard IN ARRAY ARRAY['cdr_102012', 'dist_102013'] LOOP
		FOR t IN SELECT tgname, pg_get_triggerdef(oid) AS def FROM pg_trigger
				  WHERE tgrelid = 'cdr'::regclass AND tgname LIKE 'retention%' ORDER BY tgname LOOP
			EXECUTE replace(replace(t.def, ' ON public.cdr ', format(' ON public.%I ', shard)),
							format('TRIGGER %s ', t.tgname),
							format('TRIGGER %s_%s ', t.tgname, substring(shard FROM '[0-9]+$')));
			EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', shard,
						   t.tgname || '_' || substring(shard FROM '[0-9]+$'));
		END LOOP;
	END LOOP;
END
$$;
SELECT tgrelid::regclass, tgname FROM pg_trigger
 WHERE tgrelid IN ('cdr_102012'::regclass, 'dist_102013'::regclass) ORDER BY tgrelid::regclass::text, tgname;
-- not yet placed on this node (a shard being moved here): not a shard here
INSERT INTO dist_102013 VALUES (1, '33600000001', now() - interval '1 day');
-- placed: Citus invalidates the table, which an ALTER TABLE stands in for
INSERT INTO pg_catalog.pg_dist_placement VALUES (102012, 1), (102013, 1);
ALTER TABLE dist SET (autovacuum_enabled = on);
INSERT INTO dist_102013 VALUES (2, '33600000002', now() - interval '2 years');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO dist_102013 VALUES (2, '33600000002', now() - interval '1 hour');
INSERT INTO dist_102013 VALUES (2, '33600000002', NULL);
COPY dist_102013 FROM STDIN WITH (FORMAT csv);
3,33600000003,2026-01-01
\.
UPDATE dist_102013 SET caller = NULL;
SELECT id, caller FROM dist_102013;
-- nor may the shard's owner turn the triggers off, though the shard is not
-- in this node's catalog
CREATE ROLE regress_citus_owner;
ALTER TABLE dist_102013 OWNER TO regress_citus_owner;
SET ROLE regress_citus_owner;
ALTER TABLE dist_102013 DISABLE TRIGGER retention_expire_after_102013;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE dist_102013 ENABLE REPLICA TRIGGER retention_expire_after_102013;
DROP TRIGGER retention_expire_after_102013 ON dist_102013;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- cdr's shard, on the node that protects cdr: a row two years old is not
-- stored, younger ones are, as in cdr itself
INSERT INTO cdr_102012 VALUES (1, '33600000001', '208-01-1-1', now() - interval '2 years'),
							  (2, '33600000002', '208-01-1-2', now() - interval '40 days'),
							  (3, '33600000003', '208-01-1-3', now() - interval '1 day');
INSERT INTO cdr VALUES (11, '33600000011', '208-01-1-11', now() - interval '40 days');
SELECT tableoid::regclass, id, caller, cell FROM cdr_102012
 UNION ALL SELECT tableoid::regclass, id, caller, cell FROM cdr WHERE id = 11 ORDER BY 2;
-- what the shard is follows the metadata: placed elsewhere, it is no shard
-- here (as one being moved here, before its placement is): not enforced,
-- as any table is that retention does not protect
DELETE FROM pg_catalog.pg_dist_placement WHERE shardid = 102012;
ALTER TABLE cdr SET (autovacuum_enabled = on);
INSERT INTO cdr_102012 VALUES (4, '33600000004', '208-01-1-4', now() - interval '2 years');
SELECT id, caller IS NOT NULL AS in_clear FROM cdr_102012 WHERE id = 4;
DROP TABLE cdr_102012, dist_102013;
DROP ROLE regress_citus_owner;
DELETE FROM pg_catalog.pg_dist_shard WHERE shardid IN (102012, 102013);
DELETE FROM pg_catalog.pg_dist_placement WHERE shardid IN (102012, 102013);

-- every Citus table with tagged columns, protected or not, is reported
SELECT "table", kind, note FROM retention.report() WHERE kind = 'not enforced';

-- metadata that cannot be read counts as Citus's
ALTER TABLE pg_catalog.pg_dist_partition RENAME COLUMN repmodel TO replication_model;
SELECT retention._citus_problem('cdr_102011');
SELECT retention.protect('cdr_102011', 'ended_at');
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE pg_catalog.pg_dist_partition RENAME COLUMN replication_model TO repmodel;

-- undistributed again: enforced as before
DELETE FROM pg_catalog.pg_dist_partition;
DELETE FROM pg_catalog.pg_dist_shard;
DELETE FROM pg_catalog.pg_dist_placement;
SELECT count(*) FROM retention._citus_problems();
SELECT "table", "column", kind, rows_in_clear, overdue_rows FROM retention.report() WHERE "table" = 'cdr'::regclass;
SELECT retention.verify();
CALL retention.sweep('cdr');
SELECT relid, status, error FROM retention.sweep_log ORDER BY id DESC LIMIT 1;

-- Citus gone
SET allow_system_table_mods = on;
DROP TABLE pg_catalog.pg_dist_partition, pg_catalog.pg_dist_shard, pg_catalog.pg_dist_placement,
		   pg_catalog.pg_dist_local_group;
RESET allow_system_table_mods;
SELECT retention._citus_present();

\c :regress_db
DROP DATABASE regress_citus;
