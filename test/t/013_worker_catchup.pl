# The nightly schedule and its catch-up (SPEC 3.9): a server that was down
# at retention.sweep_at sweeps, as soon as it starts, the databases whose
# last sweep started before that instant, read in the server's TimeZone;
# one swept since is left alone.  And when every background worker slot is
# taken, the launcher warns and tries again until it can start a sweeper.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('catchup');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'retention'
retention.enabled = off
timezone = 'Europe/Paris'
autovacuum = off
});
$node->start;

$node->safe_psql('postgres', q{CREATE DATABASE cdrdb});
$node->safe_psql('cdrdb', q{
	CREATE EXTENSION retention CASCADE;
	CREATE TABLE cdr (id integer PRIMARY KEY,
					  caller retention.msisdn(network_security),
					  ended_at timestamptz);
	SELECT retention.protect('cdr', 'ended_at');
	ALTER DATABASE cdrdb SET log_min_messages = debug1;
});

# due rows (ended a year ago) written with the expiry triggers off
my $next_id = 1;
sub add_due_rows
{
	$node->safe_psql('cdrdb', qq{
		SET session_replication_role = replica;
		INSERT INTO cdr SELECT i, '336' || lpad(i::text, 8, '0'), now() - interval '1 year'
		  FROM generate_series($next_id, $next_id + 99) i});
	$next_id += 100;
}
my $due = q{SELECT count(*) FROM cdr};

# the nightly sweep was an hour ago, in the server's time zone (Paris); the
# instant it stands for, as the server prints it
my ($sweep_at, $instant) = split /\|/, $node->safe_psql('cdrdb', q{
	SET timezone = 'Europe/Paris';
	SELECT to_char(now() - interval '1 hour', 'HH24:MI') || '|' ||
		   to_char(now() - interval '1 hour', 'YYYY-MM-DD HH24:MI:00')});
$node->safe_psql('postgres', qq{
	ALTER SYSTEM SET retention.enabled = on;
	ALTER SYSTEM SET retention.sweep_at = '$sweep_at'});

# --- swept after the nightly instant: nothing to catch up ------------------------

add_due_rows();
$node->safe_psql('cdrdb', q{SET client_min_messages = warning; CALL retention.sweep()});
is($node->safe_psql('cdrdb', $due), '0', 'a manual sweep after the nightly instant');
add_due_rows();

$node->stop;
my $offset = -s $node->logfile;
$node->start;
$node->wait_for_log(
	qr/retention launcher started\n.*DETAIL:  Databases are swept nightly at $sweep_at in time zone "Europe\/Paris"; the next sweep is at \d{4}-\d\d-\d\d $sweep_at:00\+0[12]\./,
	$offset);
pass('the launcher logs the nightly schedule and its time zone');
$node->wait_for_log(
	qr/DEBUG:  database "cdrdb" is up to date for the retention sweep scheduled at $instant\+0[12]/,
	$offset);
pass('the sweeper compares with the last nightly instant, in the server time zone');
is($node->safe_psql('cdrdb', $due), '100', 'swept since that instant: no catch-up');
is($node->safe_psql('cdrdb', q{SELECT count(*) FROM retention.sweep_log}), '1',
	'no sweep_log row added');

# --- last swept before it: the catch-up sweeps at start ------------------------

# as if that sweep had run yesterday, and the server had been down since
$node->safe_psql('cdrdb', q{
	UPDATE retention.sweep_log SET started_at = started_at - interval '25 hours',
								   finished_at = finished_at - interval '25 hours'});
$node->stop('immediate');
$offset = -s $node->logfile;
$node->start;
$node->wait_for_log(
	qr/LOG:  retention sweeper sweeping database "cdrdb"\n.*DETAIL:  1 protected table was not swept to the end since $instant\+0[12]\./,
	$offset);
pass('the launcher catches up the sweep missed while the server was down');
ok($node->poll_query_until('cdrdb', $due, '0'), 'the due rows are gone');
ok( $node->poll_query_until('cdrdb', q{
		SELECT status = 'done' AND run_by LIKE '% (retention sweeper)' AND vacuumed_at IS NOT NULL
		  FROM retention.sweep_log ORDER BY id DESC LIMIT 1}),
	'sweep_log shows the catch-up, vacuumed');

# --- every worker slot taken: warn, and try again --------------------------------

# one slot for the launcher, one for a parallel query (no logical
# replication launcher)
$node->append_conf('postgresql.conf', q{
max_worker_processes = 2
max_logical_replication_workers = 0
});
$offset = -s $node->logfile;
$node->restart;
# cdrdb, the newest database, is the last of the round
$node->wait_for_log(qr/DEBUG:  database "cdrdb" is up to date/, $offset);
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'retention sweeper'}),
	'the catch-up round after the restart is over');

my $busy = $node->background_psql('postgres', on_error_stop => 0);
$busy->query_until(qr/sleeping/, q{
SELECT set_config(name, 'on', false) AS forced FROM pg_settings
 WHERE name IN ('force_parallel_mode', 'debug_parallel_query') \gset
SET parallel_setup_cost = 0;
\echo sleeping
SELECT pg_sleep(600);
});
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'parallel worker'}),
	'a parallel worker takes the last slot');

add_due_rows();
$offset = -s $node->logfile;
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.sweep_interval = '2s'});
$node->reload;
$node->wait_for_log(
	qr/WARNING:  could not start the retention sweeper of database "\w+"\n.*DETAIL:  All background worker slots are in use \(max_worker_processes is 2\)\.\n.*HINT:  Raise max_worker_processes; the launcher tries again every 2 s\./,
	$offset);
pass('no slot: the launcher warns');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'retention launcher'}),
	'1', 'and keeps running');
is($node->safe_psql('cdrdb', $due), '100', 'nothing swept yet');

# the slot comes free
$node->safe_psql('postgres', q{
	SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(600)%'});
$node->wait_for_log(
	qr/LOG:  started the retention sweeper of database "(cdrdb|postgres)" after waiting for a free slot/,
	$offset);
pass('the launcher tries again and starts the sweeper');
ok($node->poll_query_until('cdrdb', $due, '0'), 'the due rows are gone');
eval { $busy->quit };

$node->stop;
unlike(slurp_file($node->logfile), qr/TRAP:|PANIC:|terminated by signal/,
	'no crash in the server log');
done_testing();
