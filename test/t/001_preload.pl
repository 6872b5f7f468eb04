# The library loads from shared_preload_libraries, and the extension works
# with and without preloading.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('preload');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'retention'");
$node->start;

is($node->safe_psql('postgres', "SHOW shared_preload_libraries"), 'retention',
	'retention is preloaded');
is($node->safe_psql('postgres', "SHOW retention.sweep_at"), '03:00',
	'its parameters are defined at start-up');
is($node->safe_psql('postgres',
		"SELECT count(*) > 0 FROM pg_settings WHERE name LIKE 'retention.%'"), 't',
	'pg_settings lists them');

# a misspelt parameter in the reserved prefix is refused
my ($rc, $out, $err) = $node->psql('postgres', "SET retention.sweep_att = '01:00'");
like($err, qr/invalid configuration parameter name "retention.sweep_att"/,
	'the retention. prefix is reserved');

# a bad value is refused with a detail
($rc, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET retention.sweep_at = '25:00'");
like($err, qr/retention.sweep_at must be a time of day as HH:MM/, 'sweep_at is checked');
for my $bad (' 3:07', '3: 7', '+3:07', '3:-0', '03:7', '03:070', '24:00', '99999999999:00', '', '3h07')
{
	($rc, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET retention.sweep_at = '$bad'");
	like($err, qr/retention.sweep_at must be a time of day/, "sweep_at '$bad' is refused");
}
for my $good ('3:07', '03:07', '23:59', '0:00')
{
	($rc, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET retention.sweep_at = '$good'");
	is($rc, 0, "sweep_at '$good' is accepted");
}
$node->safe_psql('postgres', 'ALTER SYSTEM RESET retention.sweep_at');

$node->safe_psql('postgres', 'CREATE EXTENSION retention CASCADE');
is($node->safe_psql('postgres', "SELECT '+33612345678'::retention.msisdn(billing)"),
	'33612345678', 'the extension works in a preloaded server');

# and without preloading
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''");
$node->restart;
is($node->safe_psql('postgres', "SELECT '+33612345678'::retention.msisdn(billing)"),
	'33612345678', 'the extension works without preloading');

$node->stop;
done_testing();
