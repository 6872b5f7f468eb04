# Rows written by logical replication are enforced as they arrive: the
# expiry triggers are ENABLE ALWAYS, so they fire in the subscriber's apply
# worker, which writes in replica mode (issue 13, item 18).  A late CDR
# published by a switch that knows nothing of retention is deleted or
# anonymized on the subscriber at once, not at its next sweep.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $pub = PostgreSQL::Test::Cluster->new('publisher');
$pub->init(allows_streaming => 'logical');
$pub->start;

my $sub = PostgreSQL::Test::Cluster->new('subscriber');
$sub->init;
$sub->append_conf('postgresql.conf', "shared_preload_libraries = 'retention'\nretention.enabled = off");
$sub->start;

# the publisher's table is plain: its types are text
$pub->safe_psql('postgres', q{
	CREATE TABLE cdr (id int PRIMARY KEY, caller text, cell text, ended_at timestamptz);
	CREATE PUBLICATION cdr_pub FOR TABLE cdr;
});
$sub->safe_psql('postgres', q{
	CREATE EXTENSION retention CASCADE;
	CREATE TABLE cdr (id int PRIMARY KEY, caller retention.msisdn(billing, law_enforcement),
					  cell retention.cell(network_security), ended_at timestamptz);
	SELECT retention.protect('cdr', 'ended_at', subscriber => 'caller');
});
my $connstr = $pub->connstr . ' dbname=postgres';
$sub->safe_psql('postgres',
	"CREATE SUBSCRIPTION cdr_sub CONNECTION '$connstr' PUBLICATION cdr_pub");
$sub->wait_for_subscription_sync($pub, 'cdr_sub');

$pub->safe_psql('postgres', q{
	INSERT INTO cdr VALUES
		(1, '33611111111', '208-01-1-1', now() - interval '1 day'),		-- nothing due
		(2, '33622222222', '208-01-1-2', now() - interval '4 months'),	-- cell due
		(3, '33633333333', '208-01-1-3', now() - interval '2 years'),	-- all due
		(4, '33644444444', '208-01-1-4', NULL);							-- in progress
});
$pub->wait_for_catchup('cdr_sub');

is($sub->safe_psql('postgres', q{SELECT string_agg(concat_ws(':', id, caller, cell), ',' ORDER BY id) FROM cdr}),
	'1:33611111111:208-01-1-1,2:33622222222,4:33644444444:208-01-1-4',
	'the apply worker stores a late row deleted, a partly due row anonymized');
is($sub->safe_psql('postgres',
		q{SELECT string_agg(action || '=' || rows, ',' ORDER BY action) FROM retention.write_log}),
	'anonymized=1,deleted=1', 'the write log counts them');

# a communication completed late, by an UPDATE on the publisher
$pub->safe_psql('postgres', q{UPDATE cdr SET ended_at = now() - interval '2 years' WHERE id = 4});
$pub->wait_for_catchup('cdr_sub');
is($sub->safe_psql('postgres', q{SELECT count(*) FROM cdr WHERE id = 4}), '0',
	'a row completed late through replication is deleted as it arrives');

# nothing is left for the sweep, and verify() passes
$sub->safe_psql('postgres', 'CALL retention.sweep()');
is($sub->safe_psql('postgres',
		q{SELECT rows_anonymized + rows_deleted FROM retention.sweep_log ORDER BY id DESC LIMIT 1}),
	'0', 'the next sweep finds nothing left to do');
my ($rc, $out, $err) = $sub->psql('postgres', 'SELECT retention.verify()');
is($rc, 0, 'verify() passes on the subscriber') or diag($err);

$sub->safe_psql('postgres', 'DROP SUBSCRIPTION cdr_sub');
$sub->stop;
$pub->stop;
done_testing();
