# End to end: a billing team's login reads its purpose-bound view and
# nothing else: not the table, not another purpose's view, not the
# extension's catalog of holds, consents, keys or the audit log.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('access');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'retention'\nretention.enabled = off");
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION retention CASCADE;
	CREATE ROLE billing_team LOGIN;
	CREATE ROLE police LOGIN;
	CREATE TABLE cdr (
		id		integer PRIMARY KEY,
		caller	retention.msisdn(billing, law_enforcement),
		imei	retention.imei(law_enforcement),
		cell	retention.cell(network_security),
		ended_at timestamptz,
		duration integer);
	SELECT retention.protect('cdr', 'ended_at', subscriber => 'caller');
	INSERT INTO cdr VALUES
		(1, '33611111111', '490154203237518', '208-01-1-1', now() - interval '1 day', 60),
		(2, '33622222222', '490154203237518', '208-01-1-2', now() - interval '6 months', 90);
	SET session_replication_role = replica;
	INSERT INTO cdr VALUES (3, '33633333333', '490154203237518', '208-01-1-3', now() - interval '2 years', 30);
	RESET session_replication_role;
	SELECT retention.expose('cdr', 'billing', to_role => 'billing_team');
	SELECT retention.expose('cdr', 'connection', to_role => 'police');
});

# what the billing team reads
my $billing = sub { $node->psql('postgres', $_[0], extra_params => [ '-U', 'billing_team' ]) };

my ($rc, $out, $err) = $billing->('SELECT id, caller, duration FROM cdr_billing ORDER BY id');
is($rc, 0, 'the billing team reads its view');
is($out, "1|33611111111|60\n2|33622222222|90", 'open billing rows, billing columns');

($rc, $out, $err) = $billing->('SELECT * FROM cdr_billing LIMIT 0');
($rc, $out, $err) = $billing->(q{SELECT string_agg(column_name, ',' ORDER BY ordinal_position)
	FROM information_schema.columns WHERE table_name = 'cdr_billing'});
is($out, 'id,caller,ended_at,duration', 'no column kept for another purpose');

for my $q ('SELECT * FROM cdr', 'SELECT * FROM cdr_connection',
	'SELECT * FROM retention.hold', 'SELECT * FROM retention.consent',
	'SELECT * FROM retention.audit_log', 'SELECT * FROM retention.sweep_log',
	"SELECT retention.anonymize('33611111111'::retention.msisdn, 'hash')",
	"SELECT retention.set_window('billing', '2 years')",
	"SELECT retention.unprotect('cdr')",
	"SELECT retention.expose('cdr', 'connection', 'billing_team')")
{
	($rc, $out, $err) = $billing->($q);
	like($err, qr/permission denied/, "refused: $q");
}

# the police read theirs, with the IMEI the billing team never sees
($rc, $out, $err) = $node->psql('postgres', 'SELECT id, imei FROM cdr_connection ORDER BY id',
	extra_params => [ '-U', 'police' ]);
is($out, "1|490154203237518\n2|490154203237518", 'law enforcement sees its own columns');

# a sweep changes nothing they can see, and removes what they cannot
$node->safe_psql('postgres', 'CALL retention.sweep()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cdr'), '2', 'the expired row is gone');
($rc, $out, $err) = $billing->('SELECT count(*) FROM cdr_billing');
is($out, '2', 'the billing view is unchanged');

$node->stop;
done_testing();
