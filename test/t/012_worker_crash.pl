# Crashes mid-sweep (SPEC 3.9, hardening): kill -9 of the sweeper, of a
# backend running CALL retention.sweep(), and of the postmaster.  After the
# server comes back, the launcher is running again and its catch-up
# finishes the cut-short sweep; at every step no row is half-anonymized,
# nothing still in its window or under a hold is lost, sweep_log counts
# exactly what was committed and shows the interrupted run.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep);
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/lib";
use SweepFixture;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
# sweeps an hour apart: what runs after a restart is the catch-up
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'retention'
restart_after_crash = on
retention.enabled = on
retention.sweep_interval = 3600
retention.batch_size = 100
timezone = 'Europe/Paris'
autovacuum = off
});
$node->start;

SweepFixture::create($node, 'cdrdb');
my ($held, $partly, $anonymized, $logged) =
	($SweepFixture::held, $SweepFixture::partly, $SweepFixture::anonymized, $SweepFixture::logged);

my $partly_rows = 30100;

# due rows written with the expiry triggers off, from id $from
sub add_due_rows
{
	my ($from, $n) = @_;
	$node->safe_psql('cdrdb', qq{
		SET session_replication_role = replica;
		INSERT INTO cdr
		SELECT i, '336' || lpad(i::text, 8, '0'), '208-01-1-' || i, '20801' || lpad(i::text, 10, '0'),
			   now() - interval '6 months'
		  FROM generate_series($from, $from + $n - 1) i;
		ANALYZE cdr});
	$partly_rows += $n;
}

# wait until a sweep has committed some of its work on rows from id $from
sub wait_sweep_under_way
{
	my ($from) = @_;
	ok( $node->poll_query_until('cdrdb', qq{
			SELECT count(*) > 2000 FROM cdr WHERE id >= $from AND cell IS NULL}),
		'a sweep is under way');
}

sub launcher_pid
{
	return $node->safe_psql('postgres', q{
		SELECT pid FROM pg_stat_activity WHERE backend_type = 'retention launcher'});
}

# after a crash: the server is back, with a new launcher, whose catch-up
# finishes the job
sub check_recovery
{
	my ($what, $offset, $old_launcher) = @_;
	ok( $node->poll_query_until('postgres', qq{
			SELECT count(*) = 1 FROM pg_stat_activity
			 WHERE backend_type = 'retention launcher' AND pid <> $old_launcher}),
		"$what: the launcher is back");
	$node->wait_for_log(
		qr/LOG:  retention sweeper sweeping database "cdrdb"\n.*DETAIL:  1 protected table was not swept to the end since/,
		$offset);
	pass("$what: the catch-up sweeps the database");
	ok( $node->poll_query_until('cdrdb', q{
			SELECT status = 'done' FROM retention.sweep_log ORDER BY id DESC LIMIT 1}),
		"$what: the catch-up completes");
	is($node->safe_psql('cdrdb', $anonymized), $partly_rows - 100,
		"$what: every due value is anonymized");
	is($node->safe_psql('cdrdb', q{SELECT count(*) FROM cdr WHERE ended_at < now() - interval '1 year'}),
		'0', "$what: every wholly due row is deleted");
	SweepFixture::check_invariants($node, 'cdrdb', "$what, after the catch-up", $partly_rows);
	is( $node->safe_psql('cdrdb', q{
			SELECT string_agg(status, ',' ORDER BY id) FROM
			  (SELECT id, status FROM retention.sweep_log ORDER BY id DESC LIMIT 2) s}),
		'interrupted,done', "$what: sweep_log shows the interrupted run, then the catch-up");
}

# --- kill -9 of the sweeper ----------------------------------------------------

my $offset = -s $node->logfile;
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.sweep_interval = '1s'});
$node->reload;
wait_sweep_under_way(1);
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.sweep_interval = 3600});
$node->reload;
$node->wait_for_log(qr/Databases are swept every 3600 s/, $offset);

my $launcher = launcher_pid();
my $sweeper = $node->safe_psql('postgres', q{
	SELECT pid FROM pg_stat_activity WHERE backend_type = 'retention sweeper'});
like($sweeper, qr/^\d+$/, 'the sweeper is running');
$offset = -s $node->logfile;
kill 'KILL', $sweeper;
$node->wait_for_log(qr/background worker "retention sweeper" \(PID $sweeper\) was terminated by signal 9/,
	$offset);
ok($node->poll_query_until('cdrdb', 'SELECT 1', '1'), 'the server restarted after the crash');
my $committed = $node->safe_psql('cdrdb', $anonymized);
cmp_ok($committed, '<', 30000, 'the sweep was cut short');
check_recovery('kill -9 of the sweeper', $offset, $launcher);

# --- kill -9 of a backend running CALL retention.sweep() ------------------------

add_due_rows(100001, 30000);
my $psql = $node->background_psql('cdrdb', on_error_stop => 0);
$psql->query_until(qr/calling/, qq{\\echo calling\nCALL retention.sweep();\n});
wait_sweep_under_way(100001);
my $backend = $node->safe_psql('postgres', q{
	SELECT pid FROM pg_stat_activity
	 WHERE backend_type = 'client backend' AND query LIKE 'CALL retention.sweep()%'});
like($backend, qr/^\d+$/, 'a backend is running CALL retention.sweep()');
$launcher = launcher_pid();
$offset = -s $node->logfile;
kill 'KILL', $backend;
# "server process" up to 17, "client backend" (its backend type) from 18
$node->wait_for_log(qr/(?:server process|client backend) \(PID $backend\) was terminated by signal 9/,
	$offset);
eval { $psql->quit };
ok($node->poll_query_until('cdrdb', 'SELECT 1', '1'), 'the server restarted after the crash');
check_recovery('kill -9 of a backend sweeping', $offset, $launcher);

# --- kill -9 of the postmaster -------------------------------------------------

# Without the slow trigger: nothing in a batch waits, so the sweeper must
# notice by itself that the postmaster is gone, or the server cannot start
# again until its sweep ends.
$node->safe_psql('cdrdb', q{DROP TRIGGER slow ON cdr});
add_due_rows(200001, 150000);
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.sweep_interval = '1s'});
$node->reload;
wait_sweep_under_way(200001);
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.sweep_interval = 3600});
my @pids = split /\n/, $node->safe_psql('postgres', q{
	SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()});
ok(scalar(grep { $_ eq $node->safe_psql('postgres', q{
		SELECT pid FROM pg_stat_activity WHERE backend_type = 'retention sweeper'}) } @pids),
	'the sweeper is among the server\'s processes');
$launcher = launcher_pid();
my ($postmaster) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
$node->kill9;

# every process of the killed server exits by itself
sub alive
{
	my ($pid) = @_;
	return 0 unless kill 0, $pid;
	my $stat = eval { slurp_file("/proc/$pid/stat") } // '';
	return $stat !~ /^\d+ \(.*\) Z /;	# a zombie holds nothing
}
my $waited = 0;
while (grep { alive($_) } @pids)
{
	last if $waited++ > 10 * $PostgreSQL::Test::Utils::timeout_default;
	usleep(100_000);
}
ok(!grep({ alive($_) } @pids), 'every process of the killed server exited, the sweeper too');
cmp_ok($waited, '<', 50, 'within seconds');
# the new postmaster takes over the lock file once the old one is reaped
$waited = 0;
while (kill 0, $postmaster)
{
	last if $waited++ > 10 * $PostgreSQL::Test::Utils::timeout_default;
	usleep(100_000);
}

$offset = -s $node->logfile;
$node->start;
check_recovery('kill -9 of the postmaster', $offset, $launcher);

$node->stop;
unlike(slurp_file($node->logfile), qr/TRAP:|PANIC:/, 'no assertion failure nor PANIC');
done_testing();
