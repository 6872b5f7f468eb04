# SIGTERM to a sweeper mid-sweep (SPEC 3.9): it stops at once, the batch in
# flight rolls back whole (no row is half-anonymized, nothing kept is lost,
# sweep_log counts only what was committed), the next run finishes the job
# and sweep_log shows the interrupted run.  Turning retention.enabled off
# stops a sweep in progress the same way.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time);
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/lib";
use SweepFixture;

my $node = PostgreSQL::Test::Cluster->new('sigterm');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'retention'
retention.enabled = on
retention.sweep_interval = 3600
retention.batch_size = 100
timezone = 'Europe/Paris'
autovacuum = off
log_line_prefix = '%m [%p] %q%a '
});
$node->start;

SweepFixture::create($node, 'cdrdb');
my ($held, $partly, $anonymized, $logged) =
	($SweepFixture::held, $SweepFixture::partly, $SweepFixture::anonymized, $SweepFixture::logged);

# start a sweep now, wait until it has committed some of its work (rows of
# id $from and up anonymized), and make the next sweep an hour away
sub start_sweep
{
	my ($from) = @_;
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.sweep_interval = '1s'});
	$node->reload;
	ok( $node->poll_query_until('cdrdb', qq{
			SELECT count(*) > 2000 FROM cdr WHERE id >= $from AND cell IS NULL}),
		'a sweep is under way');
	is($node->safe_psql('cdrdb', q{SELECT count(*) FROM retention.sweep_progress}), '1',
		'sweep_progress shows it');
	$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.sweep_interval = 3600});
	$node->reload;
	$node->wait_for_log(qr/Databases are swept every 3600 s/, $offset);
	return $node->safe_psql('cdrdb', q{
		SELECT pid FROM pg_stat_activity WHERE backend_type = 'retention sweeper'});
}

# --- SIGTERM ---------------------------------------------------------------------

my $pid = start_sweep(1);
like($pid, qr/^\d+$/, 'the sweeper shows in pg_stat_activity');
is( $node->safe_psql('cdrdb', qq{
		SELECT application_name || ' | ' || datname || ' | ' || query
		  FROM pg_stat_activity WHERE pid = $pid}),
	'retention sweeper | cdrdb | CALL retention.sweep()',
	'with its name, its database and its statement');

my $offset = -s $node->logfile;
my $t0 = time();
kill 'TERM', $pid;
ok( $node->poll_query_until('cdrdb', qq{SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid}),
	'the sweeper exits on SIGTERM');
my $took = time() - $t0;
cmp_ok($took, '<', 5, 'promptly');
$node->wait_for_log(
	qr/FATAL:  terminating background worker "retention sweeper" due to administrator command/,
	$offset);
pass('and says why');

my $done = $node->safe_psql('cdrdb', $anonymized);
cmp_ok($done, '>', 0, 'the batches committed before SIGTERM stay');
cmp_ok($done, '<', 30000, 'the sweep was stopped midway');
is($node->safe_psql('cdrdb', $logged), $done,
	'sweep_log counts exactly what was committed: the batch in flight rolled back whole');
SweepFixture::check_invariants($node, 'cdrdb', 'after SIGTERM', 30100);
is($node->safe_psql('cdrdb', q{SELECT string_agg(status, ',' ORDER BY id) FROM retention.sweep_log}),
	'running', 'the cut-short run is not marked done');

# --- the next run finishes the job ----------------------------------------------

$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.sweep_interval = '1s'});
$node->reload;
ok( $node->poll_query_until('cdrdb', q{
		SELECT count(*) > 0 FROM retention.sweep_log WHERE status = 'done'}),
	'the next run completes');
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.sweep_interval = 3600});
$node->reload;
is($node->safe_psql('cdrdb', $anonymized), '30000', 'every due value is anonymized');
is($node->safe_psql('cdrdb', q{SELECT count(*) FROM cdr WHERE ended_at < now() - interval '1 year'}),
	'0', 'every wholly due row is deleted');
SweepFixture::check_invariants($node, 'cdrdb', 'after the next run', 30100);
is( $node->safe_psql('cdrdb', q{
		SELECT string_agg(status, ',' ORDER BY id) FROM
		  (SELECT id, status FROM retention.sweep_log ORDER BY id LIMIT 2) s}),
	'interrupted,done', 'sweep_log shows the interrupted run, then the one that finished');
is($node->safe_psql('cdrdb', q{SELECT sum(rows_anonymized) FROM retention.sweep_log}),
	'30000', 'the two runs together anonymized each value once');
ok( $node->poll_query_until('cdrdb', q{
		SELECT count(*) = 0 FROM retention.sweep_log
		 WHERE vacuumed_at IS NULL AND (rows_anonymized > 0 OR rows_deleted > 0)}),
	'both runs\' changes are vacuumed');

# --- retention.enabled = off stops a sweep in progress -------------------------

# written with the expiry triggers off, as a bulk load by a superuser may be
$node->safe_psql('cdrdb', q{
	SET session_replication_role = replica;
	INSERT INTO cdr
	SELECT i, '336' || lpad(i::text, 8, '0'), '208-01-1-' || i, '20801' || lpad(i::text, 10, '0'),
		   now() - interval '6 months'
	  FROM generate_series(100001, 130000) i;
	ANALYZE cdr});
$pid = start_sweep(100001);
$offset = -s $node->logfile;
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.enabled = off});
$node->reload;
ok( $node->poll_query_until('cdrdb', qq{SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid}),
	'turning retention.enabled off stops the sweeper');
$node->wait_for_log(qr/LOG:  stopping the retention sweeper of database "cdrdb"/, $offset);
$done = $node->safe_psql('cdrdb', $anonymized);
cmp_ok($done, '>', 30000, 'it had anonymized some of the new rows');
cmp_ok($done, '<', 60000, 'not all of them');
SweepFixture::check_invariants($node, 'cdrdb', 'after retention.enabled off', 60100);
is($node->safe_psql('cdrdb', $logged), $done, 'its batch in flight rolled back whole');

# --- a sweeper pausing for retention.max_wal_rate: SIGTERM stops it at once --

# the rows the last sweep left are swept again, at 16 kB of WAL a second
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.max_wal_rate = '16kB'});
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.enabled = on});
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.sweep_interval = '1s'});
$node->reload;
ok( $node->poll_query_until('cdrdb', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'retention sweeper' AND wait_event_type = 'Extension'}),
	'a sweeper under retention.max_wal_rate pauses');
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.sweep_interval = 3600});
$node->reload;
$pid = $node->safe_psql('cdrdb', q{
	SELECT pid FROM pg_stat_activity WHERE backend_type = 'retention sweeper'});
$t0 = time();
kill 'TERM', $pid;
ok( $node->poll_query_until('cdrdb', qq{SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid}),
	'SIGTERM stops it in its pause');
cmp_ok(time() - $t0, '<', 5, 'promptly');
SweepFixture::check_invariants($node, 'cdrdb', 'after SIGTERM in a pause', 60100);
is($node->safe_psql('cdrdb', $logged), $node->safe_psql('cdrdb', $anonymized),
	'its batch in flight rolled back whole');

$node->stop;
unlike(slurp_file($node->logfile), qr/TRAP:|PANIC:|terminated by signal/,
	'no crash in the server log');
done_testing();
