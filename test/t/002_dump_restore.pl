# pg_dump and restore keep the tagged types, their purposes, the data, the
# operator's policy settings and the audit log (whose chain still verifies).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'retention'");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION retention CASCADE;
	CREATE SCHEMA "Telco ops";
	CREATE TABLE "Telco ops"."CDR 2026" (
		id		bigint PRIMARY KEY,
		caller	retention.msisdn(law_enforcement, billing),
		imei	retention.imei(law_enforcement),
		cell	retention.cell(network_security),
		sip		retention.ident,
		ended_at timestamptz
	);
	CREATE INDEX ON "Telco ops"."CDR 2026" (caller);
	INSERT INTO "Telco ops"."CDR 2026"
	SELECT i, '+336' || lpad(i::text, 8, '0'), '490154203237518',
		   '208-01-' || i || '-' || (i * 7), 'sip:' || i || '@example.net',
		   '2026-11-01'::timestamptz + i * interval '1 minute'
	  FROM generate_series(1, 1000) i;
	INSERT INTO "Telco ops"."CDR 2026" VALUES (0, '33612*', '49015420*', '208-01-1', NULL, NULL);
	SELECT retention.set_window('network_security', '2 months');
	-- protection, a method, a hold, a consent and a purpose-bound view
	CREATE ROLE dump_billing;
	SELECT retention.protect('"Telco ops"."CDR 2026"', 'ended_at', subscriber => 'caller');
	SELECT retention.set_method('"Telco ops"."CDR 2026"', 'cell', 'generalize');
	SELECT retention.hold('"Telco ops"."CDR 2026"', '33600000007', '2000-01-01', now(),
						  'judicial_request', 'PV-DUMP', now() + interval '1 month');
	-- an EU preservation order, extended, then a production confirmed:
	-- its authority, kind, renewals and their references are dumped too
	SELECT retention.hold('"Telco ops"."CDR 2026"', '33600000009', '2000-01-01', now(),
						  'quick_freeze', 'EPOC-DUMP', now() + interval '60 days',
						  authority => 'Parquet de Bruxelles', order_kind => 'eu_preservation');
	SELECT retention.extend_hold(id, until + interval '30 days', 'EPOC-DUMP-EXT')
	  FROM retention.hold WHERE reference = 'EPOC-DUMP';
	SELECT retention.request_production(id, 'EPOC-DUMP-PROD') FROM retention.hold WHERE reference = 'EPOC-DUMP';
	SELECT retention.grant_consent('33600000008', now() + interval '1 month', now() + interval '1 year');
	SELECT retention.expose('"Telco ops"."CDR 2026"', 'billing', 'dump_billing');
	CREATE TABLE cdr_part (caller retention.msisdn(law_enforcement), ended_at timestamptz)
		PARTITION BY RANGE (ended_at);
	CREATE TABLE cdr_part_old PARTITION OF cdr_part FOR VALUES FROM ('2000-01-01') TO ('2025-07-01');
	SELECT retention.protect('cdr_part', 'ended_at');
});

my $types_sql = q{
	SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
	  FROM pg_attribute WHERE attrelid = '"Telco ops"."CDR 2026"'::regclass AND attnum > 0};
my $data_sql = q{SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM "Telco ops"."CDR 2026" t};
my $policy_sql = q{SELECT string_agg(purpose || '=' || coalesce("window"::text, '-'), ',') FROM retention.policy};
my $audit_sql = q{SELECT count(*) || ' ' || string_agg(encode(hash, 'hex'), ',' ORDER BY id) FROM retention.audit_log};
my $catalog_sql = q{SELECT (SELECT string_agg(relid::text || ':' || ended_at || ':' || coalesce(subscriber, '-'), ',' ORDER BY relid::text) FROM retention.protected_table)
	|| ' ' || (SELECT string_agg(attname || '=' || method, ',') FROM retention.column_method)
	|| ' ' || (SELECT string_agg(concat_ws('/', reference, authority, order_kind, extensions, production_reference,
										   coalesce(until::text, 'open')), ',' ORDER BY id) FROM retention.hold)
	|| ' ' || (SELECT string_agg(concat_ws('/', hold_id, kind, reference, until), ',' ORDER BY id) FROM retention.hold_renewal)
	|| ' ' || (SELECT string_agg(subscriber, ',') FROM retention.consent)
	|| ' ' || (SELECT string_agg(view_name || '>' || role, ',') FROM retention.exposure)};

my %before = map { $_ => $node->safe_psql('src', $_) } ($types_sql, $data_sql, $policy_sql, $audit_sql, $catalog_sql);

my $dump = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dump ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst'), $dump ],
	'pg_restore into a new database');

for my $q ($types_sql, $data_sql, $policy_sql, $audit_sql, $catalog_sql)
{
	is($node->safe_psql('dst', $q), $before{$q}, "same after restore: $q");
}
is($node->safe_psql('dst', q{SELECT concat_ws(' ', authority, order_kind, extensions, production_reference,
		coalesce(until::text, 'open'), (SELECT string_agg(r.reference, ',' ORDER BY r.id) FROM retention.hold_renewal r))
	FROM retention.hold WHERE reference = 'EPOC-DUMP'}),
	'Parquet de Bruxelles eu_preservation 1 EPOC-DUMP-PROD open EPOC-DUMP-EXT,EPOC-DUMP-PROD',
	'a quick freeze keeps its authority, kind, extensions and production after restore');
like($node->safe_psql('dst', $types_sql), qr/caller retention.msisdn\(billing,law_enforcement\)/,
	'purposes restored in canonical order');
is($node->safe_psql('dst', 'SELECT valid FROM retention.verify_audit_log()'), 't',
	'the audit chain verifies after restore');
is($node->safe_psql('dst', q{SELECT count(*) FROM "Telco ops"."CDR 2026" WHERE caller = '33600000042'}),
	'1', 'the restored index answers');

# the restored database enforces retention as the original did
is($node->safe_psql('dst', q{SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
	WHERE c.relname IN ('CDR 2026', 'cdr_part', 'cdr_part_old') AND t.tgname LIKE 'retention%'}), '6',
	'the expiry triggers are restored, on partitions too');
$node->safe_psql('dst', q{INSERT INTO "Telco ops"."CDR 2026" VALUES (5000, '33650005000', NULL, NULL, NULL, now() - interval '2 years')});
is($node->safe_psql('dst', q{SELECT count(*) FROM "Telco ops"."CDR 2026" WHERE id = 5000}), '0',
	'a late row is not kept in the restored database');
$node->safe_psql('dst', q{INSERT INTO cdr_part VALUES ('33611111111', '2025-06-01')});
is($node->safe_psql('dst', q{SELECT count(*) FROM cdr_part}), '0', 'nor in a restored partition');
is($node->safe_psql('dst', q{SELECT count(*) > 0 FROM "Telco ops"."CDR 2026_billing" WHERE caller = '33600000042'}), 't',
	'the purpose-bound view is restored');
is($node->safe_psql('dst', q{SELECT has_table_privilege('dump_billing', '"Telco ops"."CDR 2026_billing"', 'SELECT')}), 't',
	'with its grant');
$node->safe_psql('dst', 'CALL retention.sweep()');
is($node->safe_psql('dst', q{SELECT count(*) FROM "Telco ops"."CDR 2026" WHERE caller = '33600000007'}), '1',
	'the hold still holds after restore');
is($node->safe_psql('dst', 'SELECT valid FROM retention.verify_audit_log()'), 't',
	'the audit chain verifies after restore and a sweep');

# a plain-text dump restores too
my $sql = $node->basedir . '/src.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('src'), '-f', $sql ], 'plain pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE dst2');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('dst2'), '-f', $sql ],
	'plain restore');
is($node->safe_psql('dst2', $data_sql), $before{$data_sql}, 'same data after plain restore');

$node->stop;
done_testing();
