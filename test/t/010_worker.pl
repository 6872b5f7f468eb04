# The background worker sweeps by itself (SPEC 3.9): the launcher shows in
# pg_stat_activity and says when it sweeps and in which time zone; with a
# short retention.sweep_interval it sweeps due rows nobody swept by hand,
# records the run as its own in sweep_log, vacuums what it changed (also
# after a manual CALL), pauses while retention.enabled is off, sweeps only
# the databases of retention.databases, and picks up a database created
# while the server runs.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('worker');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'retention'
retention.enabled = on
retention.sweep_at = '03:00'
timezone = 'Europe/Paris'
max_worker_processes = 16
log_line_prefix = '%m [%p] %q%a '
# only the worker vacuums here
autovacuum = off
});
$node->start;

# --- the launcher ------------------------------------------------------------

ok( $node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'retention launcher'
		   AND application_name = 'retention launcher'
		   AND datname IS NULL AND wait_event_type = 'Extension'}),
	'the launcher shows in pg_stat_activity, connected to no database');
$node->wait_for_log(
	qr/retention launcher started\n.*DETAIL:  Databases are swept nightly at 03:00 in time zone "Europe\/Paris"; the next sweep is at \d{4}-\d\d-\d\d 03:00:00\+0[12]\./
);
pass('the launcher logs when it sweeps, and in which time zone');

# --- a database with due rows nobody swept -----------------------------------

# in-window rows (ended yesterday) stay; due rows (ended a year ago, past
# network_security's 3 months) go.  $1 rows from id $2, ended at $3
sub add_rows
{
	my ($db, $n, $from, $ended, %opt) = @_;
	my $role = $opt{replica} ? 'SET session_replication_role = replica;' : '';
	$node->safe_psql($db, qq{
		$role
		INSERT INTO cdr
		SELECT i, '336' || lpad(i::text, 8, '0'), '208-01-1-' || i, $ended
		  FROM generate_series($from, $from + $n - 1) i});
}

sub setup_db
{
	my ($db) = @_;
	$node->safe_psql('postgres', qq{CREATE DATABASE $db});
	$node->safe_psql($db, q{
		CREATE EXTENSION retention CASCADE;
		CREATE TABLE cdr (id integer PRIMARY KEY,
						  caller retention.msisdn(network_security),
						  cell retention.cell(network_security),
						  ended_at timestamptz);
		CREATE INDEX ON cdr (caller);});
	# written before protection: the triggers never saw them
	add_rows($db, 100, 1, q{now() - interval '1 day'});
	add_rows($db, 100, 1001, q{now() - interval '1 year'});
	$node->safe_psql($db, q{SELECT retention.protect('cdr', 'ended_at')});
	# written with the triggers off
	add_rows($db, 50, 2001, q{now() - interval '1 year'}, replica => 1);
}

my $due = q{SELECT count(*) FROM cdr WHERE ended_at < now() - interval '3 months'};
my $kept = q{SELECT count(*) FROM cdr
			  WHERE ended_at > now() - interval '2 days' AND caller IS NOT NULL AND cell IS NOT NULL};

setup_db('cdrdb');
is($node->safe_psql('cdrdb', $due), '150', 'due rows wait for a sweep');

# nightly at 03:00 is far away: a short interval instead, on reload
my $offset = -s $node->logfile;
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.sweep_interval = '1s'});
$node->reload;
$node->wait_for_log(
	qr/retention launcher reloaded its configuration\n.*DETAIL:  Databases are swept every 1 s \(retention.sweep_interval\)/,
	$offset);
pass('the launcher logs the new schedule on reload');

ok($node->poll_query_until('cdrdb', $due, '0'), 'the worker swept the due rows');
is($node->safe_psql('cdrdb', $kept), '100', 'in-window rows are untouched');
ok( $node->poll_query_until('cdrdb', q{
		SELECT count(*) > 0 FROM retention.sweep_log
		 WHERE status = 'done' AND rows_deleted = 150 AND run_by LIKE '%(retention sweeper)'
		   AND vacuumed_at IS NOT NULL AND vacuumed_at >= finished_at}),
	'sweep_log shows the worker\'s run, and the vacuum after it');
ok( $node->poll_query_until('cdrdb', q{
		SELECT vacuum_count > 0 AND n_dead_tup = 0 FROM pg_stat_user_tables WHERE relname = 'cdr'}),
	'the table was vacuumed: no dead row versions left');
like($node->safe_psql('cdrdb', q{SELECT string_agg(DISTINCT run_by, ',') FROM retention.sweep_log}),
	qr/^retention_sweeper \(retention sweeper\)$/, 'every run so far is the worker\'s, as retention_sweeper');

# --- triggers on, whatever the database says ------------------------------------

# The sweep anonymizes through retention's triggers: a database set to
# session_replication_role = replica (a logical replication target) must not
# turn them off for the worker.  caller is kept a year for billing, cell is
# due after 3 months.
$node->safe_psql('cdrdb', q{
	CREATE TABLE cdr2 (caller retention.msisdn(billing), cell retention.cell(network_security),
					   ended_at timestamptz);
	SELECT retention.protect('cdr2', 'ended_at');
	SET session_replication_role = replica;
	INSERT INTO cdr2 SELECT '336' || lpad(i::text, 8, '0'), '208-01-1-' || i, now() - interval '6 months'
	  FROM generate_series(1, 100) i;
	ALTER DATABASE cdrdb SET session_replication_role = replica;});
ok( $node->poll_query_until('cdrdb', q{
		SELECT count(*) FILTER (WHERE cell IS NULL) || ' ' || count(caller) FROM cdr2}, '100 100'),
	'the worker anonymizes in a database set to session_replication_role = replica');
$node->safe_psql('cdrdb', q{ALTER DATABASE cdrdb RESET session_replication_role; DROP TABLE cdr2;});

# --- retention.enabled = off pauses; a manual CALL is vacuumed later -------------

$offset = -s $node->logfile;
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.enabled = off});
$node->reload;
$node->wait_for_log(qr/DETAIL:  Sweeps are paused: retention.enabled is off\./, $offset);
# a sweeper that had started before the reload has finished
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'retention sweeper'}),
	'no sweeper runs while paused');
my $runs = $node->safe_psql('cdrdb', q{SELECT count(*) FROM retention.sweep_log});
add_rows('cdrdb', 10, 3001, q{now() - interval '1 year'}, replica => 1);
# three intervals pass: nothing is swept
my $t0 = $node->safe_psql('cdrdb', q{SELECT clock_timestamp()});
$node->poll_query_until('cdrdb', qq{SELECT clock_timestamp() > '$t0'::timestamptz + interval '3 s'});
is($node->safe_psql('cdrdb', $due), '10', 'paused: due rows stay');
is($node->safe_psql('cdrdb', q{SELECT count(*) FROM retention.sweep_log}), $runs,
	'paused: no sweep ran');

$node->safe_psql('cdrdb', q{SET client_min_messages = warning; CALL retention.sweep()});
is($node->safe_psql('cdrdb', $due), '0', 'a manual CALL sweeps');
is( $node->safe_psql('cdrdb', q{
		SELECT rows_deleted || ' ' || (vacuumed_at IS NULL) || ' ' || (run_by LIKE '%retention sweeper%')
		  FROM retention.sweep_log ORDER BY id DESC LIMIT 1}),
	'10 true false', 'the manual run is not vacuumed yet');
is($node->safe_psql('cdrdb', q{SELECT count(*) FROM retention._vacuum_pending()}), '1',
	'_vacuum_pending() lists its table');

$offset = -s $node->logfile;
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.enabled = on});
$node->reload;
ok( $node->poll_query_until('cdrdb', q{
		SELECT count(*) = 0 FROM retention.sweep_log WHERE vacuumed_at IS NULL AND rows_deleted > 0}),
	'back on: the worker vacuums after the manual CALL');
is($node->safe_psql('cdrdb', q{SELECT count(*) FROM retention._vacuum_pending()}), '0',
	'nothing left to vacuum');

# --- retention.databases ----------------------------------------------------

$offset = -s $node->logfile;
$node->safe_psql('postgres', q{ALTER SYSTEM SET retention.databases = 'cdrdb, nosuchdb'});
$node->reload;
$node->wait_for_log(qr/WARNING:  database "nosuchdb" in retention.databases cannot be swept/,
	$offset);
pass('a database named in retention.databases but missing is reported');

# created while the server runs, but not listed: left alone
setup_db('otherdb');
$t0 = $node->safe_psql('cdrdb', q{SELECT clock_timestamp()});
ok( $node->poll_query_until('cdrdb', qq{
		SELECT count(*) >= 3 FROM retention.sweep_log WHERE started_at > '$t0'}),
	'cdrdb is swept again and again');
is($node->safe_psql('otherdb', $due), '150', 'otherdb, not listed, is not swept');
is($node->safe_psql('otherdb', q{SELECT count(*) FROM retention.sweep_log}), '0',
	'otherdb has no sweep_log row');

# a list that does not parse is refused
my ($rc, $out, $err) = $node->psql('postgres', q{ALTER SYSTEM SET retention.databases = 'cdrdb, "otherdb'});
like($err, qr/retention.databases must be a comma-separated list of database names/,
	'a malformed list is refused');

$node->safe_psql('postgres', q{ALTER SYSTEM RESET retention.databases});
$node->reload;
ok($node->poll_query_until('otherdb', $due, '0'),
	'listed (all databases): otherdb, created while the server ran, is swept');
is($node->safe_psql('otherdb', $kept), '100', 'its in-window rows are untouched');

# a worker idle between sweeps holds no database: DROP DATABASE goes through
$node->safe_psql('postgres', q{DROP DATABASE otherdb});
pass('DROP DATABASE is not blocked by the worker');

# --- a launcher that exits is started again ----------------------------------

my $launcher = $node->safe_psql('postgres', q{
	SELECT pid FROM pg_stat_activity WHERE backend_type = 'retention launcher'});
$offset = -s $node->logfile;
$node->safe_psql('postgres', qq{SELECT pg_terminate_backend($launcher)});
$node->wait_for_log(qr/background worker "retention launcher" \(PID $launcher\) exited with exit code 1/,
	$offset);
ok( $node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'retention launcher' AND pid <> $launcher}),
	'a terminated launcher exits non-zero and the postmaster starts it again');
$node->wait_for_log(qr/retention launcher started/, $offset);

# --- the time zone, on reload ------------------------------------------------

$offset = -s $node->logfile;
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET retention.sweep_interval = 0;
	ALTER SYSTEM SET timezone = 'America/New_York';
	ALTER SYSTEM SET retention.sweep_at = '01:30'});
$node->reload;
$node->wait_for_log(
	qr/DETAIL:  Databases are swept nightly at 01:30 in time zone "America\/New_York"; the next sweep is at \d{4}-\d\d-\d\d \d\d:30:00/,
	$offset);
pass('the new time zone and time of day are logged on reload');

$node->stop;
unlike(slurp_file($node->logfile), qr/TRAP:|PANIC:|terminated by signal/,
	'no crash in the server log');
done_testing();
