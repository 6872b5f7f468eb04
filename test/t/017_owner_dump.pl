# The database's owner, not a superuser (as Kamailio's kamailio role owns
# its database and CDR tables), can pg_dump its database once retention is
# installed, and a superuser restores the dump.  The dump carries what the
# owner may read of retention's catalog (policy settings, protected tables,
# holds, consents, exposures, sweep and audit logs), never a key.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('owner_dump');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'retention'");
$node->start;

$node->safe_psql('postgres', q{
	CREATE ROLE kamailio LOGIN;
	CREATE ROLE reader LOGIN;
	CREATE DATABASE kamailio OWNER kamailio;
});
$node->safe_psql('kamailio', 'CREATE EXTENSION retention CASCADE');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('kamailio') . ' user=kamailio', '-c', q{
	CREATE TABLE acc (id serial PRIMARY KEY, caller retention.msisdn(billing, law_enforcement),
					  ended_at timestamptz);
	INSERT INTO acc (caller, ended_at)
	SELECT '3361234' || lpad(i::text, 4, '0'), now() - i * interval '1 hour' FROM generate_series(1, 50) i;
} ], 'the owner creates and fills its CDR table');
$node->safe_psql('kamailio', q{
	SELECT retention.protect('acc', 'ended_at', subscriber => 'caller');
	SELECT retention.set_window('billing', '6 months');
	SELECT retention.hold('acc', '33612340007', now() - interval '1 year', now(),
						  'judicial_request', 'PV-OWNER', now() + interval '1 month');
	SELECT retention.grant_consent('33612340008', now() + interval '1 month', now() + interval '1 year');
	SELECT retention.expose('acc', 'billing', 'reader');
	SELECT retention.rotate_key();
	CALL retention.sweep();
});

my $keys = $node->safe_psql('kamailio', q{SELECT string_agg(encode(key, 'hex'), ',') FROM retention.key});
my $catalog_sql = q{SELECT (SELECT count(*) FROM retention.hold) || ' ' || (SELECT count(*) FROM retention.consent)
	|| ' ' || (SELECT count(*) FROM retention.protected_table) || ' ' || (SELECT count(*) FROM retention.exposure)
	|| ' ' || (SELECT count(*) FROM retention.sweep_log) || ' ' || (SELECT count(*) FROM retention.audit_log)
	|| ' ' || (SELECT string_agg(purpose || '=' || "window", ',') FROM retention.window_setting)};
my $before = $node->safe_psql('kamailio', $catalog_sql);
my $data_sql = q{SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM acc t};
my $data = $node->safe_psql('kamailio', $data_sql);

# the owner dumps its database, both formats
my $plain = $node->basedir . '/owner.sql';
my $rc = system_log('pg_dump', '-d', $node->connstr('kamailio') . ' user=kamailio', '-f', $plain);
is($rc, 0, 'the database owner runs pg_dump');
my $custom = $node->basedir . '/owner.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('kamailio') . ' user=kamailio', '-f', $custom ],
	'and a custom-format pg_dump');
my $dump = slurp_file($plain);
like($dump, qr/COPY retention\.hold /, 'the dump has the holds');
like($dump, qr/COPY retention\.audit_log /, 'and the audit log');
unlike($dump, qr/COPY retention\.key\b/, 'not retention.key');
is(scalar(grep { index($dump, $_) >= 0 } split(/,/, $keys)), 0, 'and no key bytes');

# what the owner may read: the catalog, not the keys nor the functions of retention_admin
my ($kret, $kout, $kerr) = $node->psql('kamailio', q{SET ROLE kamailio; SELECT count(*) FROM retention.key});
like($kerr, qr/permission denied for table key/, 'the owner reads no key');
($kret, $kout, $kerr) = $node->psql('kamailio', q{SET ROLE kamailio; SELECT retention.unprotect('acc')});
like($kerr, qr/permission denied for function unprotect/, 'nor may it change policy');
($kret, $kout, $kerr) = $node->psql('kamailio', q{SET ROLE reader; SELECT count(*) FROM retention.hold});
like($kerr, qr/permission denied for table hold/, 'another role reads no hold');

# a superuser restores it into a new database of the same owner
$node->safe_psql('postgres', 'CREATE DATABASE restored OWNER kamailio');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), $custom ],
	'a superuser restores the owner\'s dump');
is($node->safe_psql('restored', $catalog_sql), $before, 'retention\'s catalog is restored');
is($node->safe_psql('restored', $data_sql), $data, 'and the data');
is($node->safe_psql('restored', 'SELECT valid FROM retention.verify_audit_log()'), 't',
	'the audit chain verifies');
$node->safe_psql('postgres', 'CREATE DATABASE restored2 OWNER kamailio');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored2'), '-f', $plain ],
	'the plain dump restores too');
is($node->safe_psql('restored2', $catalog_sql), $before, 'with retention\'s catalog');

$node->stop;
done_testing();
