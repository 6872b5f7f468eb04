# Citus: fail closed, on a real cluster (issue 18, items 1 and 6).  A
# coordinator and two workers, Citus and retention preloaded on each.
# Retention does not enforce Citus tables yet: protect() refuses them; a
# table protected, then distributed (a function call, which no event
# trigger sees) cannot be distributed with its rows, and once distributed
# empty, every write that reaches one of its shards is refused there (the
# triggers Citus copied find the shard's table through Citus's metadata,
# and the worker's catalog does not protect it), before and after a shard
# move and a split.  It shows in report() as 'not enforced' on every node,
# makes verify() raise there, and its sweep, by hand or by the background
# worker, fails with the reason instead of logging "done, 0 rows"; so with
# Citus installed after retention, and under a Citus version retention
# does not know.  docs/citus.md.
#
# Needs Citus in the PostgreSQL tree (citus.so in pg_config --pkglibdir);
# test/run-tests skips it, with one line, where it is not.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
plan skip_all => "Citus is not installed (no citus.so in $pkglibdir)"
  unless -e "$pkglibdir/citus.so";

my $note = q{Citus distributed table (distribution column id): its rows are in shards that retention's sweep and report do not reach};
my $hint = q{HINT:  Retention does not enforce Citus tables yet: keep personal data in a local table that Citus does not manage (undistribute_table() makes a Citus table local again), and protect that.  See docs/citus.md.};

my @nodes;
for my $name ('coordinator', 'worker1', 'worker2')
{
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'citus,retention'
# the coordinator's worker is turned on below
retention.enabled = off
max_worker_processes = 16
max_prepared_transactions = 20
# few shards: a small cluster, a short test
citus.shard_count = 4
timezone = 'Europe/Paris'
lc_messages = 'C'
citus.log_distributed_deadlock_detection = off
# a node reaches itself (a shard move) through its socket, as the others do
citus.local_hostname = '@{[ $node->host ]}'
});
	$node->start;
	push @nodes, $node;
}
my ($coord, $w1, $w2) = @nodes;

# psql's stderr, verbose, of one statement that must fail
sub error_of
{
	my ($node, $db, $sql) = @_;
	my ($rc, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\n$sql");
	isnt($rc, 0, "fails: $sql");
	$err =~ s/^psql:<stdin>:\d+: //mg;
	$err =~ s/^LOCATION: .*(?:\n|\z)//mg;
	$err =~ s/^CONTEXT: .*\z//ms;
	$err =~ s/\n*\z/\n/;
	return $err;
}

# a cluster in database $db: Citus everywhere, the workers added
sub cluster
{
	my ($db, $before) = @_;
	for my $node (@nodes)
	{
		$node->safe_psql('postgres', "CREATE DATABASE $db") if $db ne 'postgres';
	}
	$coord->safe_psql($db, $before) if $before;
	$_->safe_psql($db, 'CREATE EXTENSION citus') for @nodes;
	$coord->safe_psql($db, sprintf(q{
		SELECT citus_set_coordinator_host('%s', %d);
		SELECT citus_add_node('%s', %d);
		SELECT citus_add_node('%s', %d);},
		$coord->host, $coord->port, $w1->host, $w1->port, $w2->host, $w2->port));
}

cluster('postgres');
$coord->safe_psql('postgres', 'CREATE EXTENSION retention CASCADE');
is($w1->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'retention'}),
	'1.1', 'CREATE EXTENSION retention reaches the workers');
is($coord->safe_psql('postgres', q{SELECT retention._citus_present(), retention._citus_version_problem() IS NULL}),
	't|t', 'Citus is seen, and its version is known');

# --- protect() refuses what Citus manages ------------------------------------

$coord->safe_psql('postgres', q{
	CREATE TABLE calls (id bigint, caller retention.msisdn(billing), ended_at timestamptz);
	SELECT create_distributed_table('calls', 'id');
	CREATE TABLE plans (id bigint, caller retention.msisdn(billing), ended_at timestamptz);
	SELECT create_reference_table('plans');
	CREATE TABLE plans_pk (id bigint PRIMARY KEY);
	SELECT create_reference_table('plans_pk');
	CREATE TABLE locals (id bigint, caller retention.msisdn(billing), ended_at timestamptz);
	SELECT citus_add_local_table_to_metadata('locals');
});
my $err = error_of($coord, 'postgres', q{SELECT retention.protect('calls', 'ended_at')});
is($err, qq{ERROR:  0A000: cannot protect distributed table "calls"
DETAIL:  Citus distributes it by column "id": its rows are in shards that retention's sweep and report do not reach.
$hint
}, 'protect() refuses a distributed table');
$err = error_of($coord, 'postgres', q{SELECT retention.protect('plans', 'ended_at')});
is($err, qq{ERROR:  0A000: cannot protect reference table "plans"
DETAIL:  Citus keeps a copy of it on every node: its rows are in shards that retention's sweep and report do not reach.
$hint
}, 'protect() refuses a reference table');
$err = error_of($coord, 'postgres', q{SELECT retention.protect('locals', 'ended_at')});
like($err, qr/^ERROR:  0A000: cannot protect Citus local table "locals"\n/, 'protect() refuses a Citus local table');

# a shard, on the worker that holds it (Citus hides shards from pg_class)
my $shard = $w1->safe_psql('postgres', q{
	SELECT 'calls_' || s.shardid FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
	 WHERE s.logicalrelid = 'calls'::regclass AND p.groupid = (SELECT groupid FROM pg_dist_local_group)
	 ORDER BY s.shardid LIMIT 1});
like($shard, qr/^calls_\d+$/, "worker1 holds shard $shard");
$err = error_of($w1, 'postgres', qq{SELECT retention.protect('$shard', 'ended_at')});
like($err, qr/^ERROR:  0A000: cannot protect shard "$shard" of Citus table "calls"\n/,
	'protect() refuses a shard on a worker');
# Citus cuts a long name short, with a hash of it before the shard id
my $long = 'calls_of_a_name_long_enough_that_citus_must_shorten_its_shards';
$coord->safe_psql('postgres', qq{
	CREATE TABLE $long (id bigint, caller retention.msisdn(billing), ended_at timestamptz);
	SELECT create_distributed_table('$long', 'id');
});
my $long_shard = $w1->safe_psql('postgres', qq{
	SET citus.show_shards_for_app_name_prefixes = '*';
	SELECT c.relname FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
	  JOIN pg_class c ON right(c.relname, length(s.shardid::text) + 1) = '_' || s.shardid
	 WHERE s.logicalrelid = '$long'::regclass AND p.groupid = (SELECT groupid FROM pg_dist_local_group)
	 ORDER BY s.shardid LIMIT 1});
like($long_shard, qr/^calls_of_a_name_long_enough_that_citus_must_sho_[0-9a-f]{8}_\d+$/,
	"worker1 holds shard $long_shard");
$err = error_of($w1, 'postgres', qq{SELECT retention.protect('$long_shard', 'ended_at')});
like($err, qr/^ERROR:  0A000: cannot protect shard "$long_shard" of Citus table "$long"\n/,
	'protect() refuses a shard whose name Citus shortened');
$err = error_of($w1, 'postgres', q{SELECT retention.protect('calls', 'ended_at')});
like($err, qr/^ERROR:  0A000: cannot protect distributed table "calls"\n/,
	'protect() refuses the distributed table on a worker too');

# Citus itself refuses to distribute a table with triggers, unless told
$coord->safe_psql('postgres', q{
	CREATE TABLE cdr (id bigint, caller retention.msisdn(billing),
					  cell retention.cell(network_security), ended_at timestamptz);
	SELECT retention.protect('cdr', 'ended_at', subscriber => 'caller');
});
$err = error_of($coord, 'postgres', q{SELECT create_distributed_table('cdr', 'id')});
like($err, qr/cannot distribute relation "cdr" because it has triggers/,
	'a protected table is not distributed while citus.enable_unsafe_triggers is off');

# Citus renames a table's triggers when it makes it a Citus local table,
# by hand or for a foreign key to a reference table: retention's guard
# refuses that, and the table stays local and enforced
$coord->safe_psql('postgres', q{
	CREATE TABLE subscriber (id bigint, plan_id bigint PRIMARY KEY, caller retention.msisdn(billing),
							 ended_at timestamptz);
	SELECT retention.protect('subscriber', 'ended_at');
});
$err = error_of($coord, 'postgres', q{SELECT citus_add_local_table_to_metadata('subscriber')});
like($err, qr/^ERROR:  42501: cannot rename or alter retention's trigger on public\.subscriber_\d+\n/,
	'a protected table is not made a Citus local table');
$err = error_of($coord, 'postgres', q{
	ALTER TABLE subscriber ADD CONSTRAINT subscriber_plan FOREIGN KEY (plan_id) REFERENCES plans_pk (id)});
like($err, qr/^ERROR:  42501: cannot rename or alter retention's trigger on public\.subscriber_\d+\n/m,
	'nor by a foreign key to a reference table');
is($coord->safe_psql('postgres', q{
	SELECT retention._citus_problem('subscriber') IS NULL,
		   count(*) FILTER (WHERE kind = 'tagged') FROM retention.report() WHERE "table" = 'subscriber'::regclass}),
	't|1', 'it stays local, and enforced');

# --- protected, then distributed ------------------------------------------------

my $refused = q{of Citus table "cdr"
DETAIL:  Retention's triggers were copied to the shard, but table "cdr" is not protected on this node: the row would be stored with nothing expired.};
my $refusal = qr/cannot write to shard "(cdr_\d+)" \Q$refused\E\nHINT:  Retention does not enforce Citus tables yet: undistribute_table\(\) makes the table local again, to be protected again\.  See docs\/citus\.md\./;
# Citus passes on the message and detail of an error in its COPY to a shard,
# not its SQLSTATE nor its hint
my $copy_refusal = qr/^ERROR:  XX000: cannot write to shard "cdr_\d+" \Q$refused\E\n\z/;

# with rows: Citus copies them into the shards, whose triggers refuse them,
# and the table stays local
$coord->safe_psql('postgres', q{
	CREATE TABLE loaded (id bigint, caller retention.msisdn(billing), ended_at timestamptz);
	SELECT retention.protect('loaded', 'ended_at');
	INSERT INTO loaded SELECT i, '336' || lpad(i::text, 8, '0'), now() - interval '1 day'
	  FROM generate_series(1, 20) i;
});
$err = error_of($coord, 'postgres', q{
	SET citus.enable_unsafe_triggers = on;
	SELECT create_distributed_table('loaded', 'id')});
like($err, qr/ERROR:  XX000: cannot write to shard "loaded_\d+" of Citus table "loaded"\n/,
	'a protected table with rows is not distributed: its shards refuse the rows copied into them');
is($coord->safe_psql('postgres', q{
	SELECT retention._citus_problem('loaded') IS NULL, count(*) FROM loaded}),
	't|20', 'it stays local, with its rows, and enforced');

# empty, it is distributed; then every write through the coordinator
# reaches a shard whose node does not protect cdr, and is refused
$coord->safe_psql('postgres', q{
	SET citus.enable_unsafe_triggers = on;
	SELECT create_distributed_table('cdr', 'id');
});
my @shards = split /\n/, $coord->safe_psql('postgres', q{
	SELECT 'cdr_' || shardid FROM pg_dist_shard WHERE logicalrelid = 'cdr'::regclass ORDER BY shardid});

# every shard refuses what reaches it: one row at a time, each names its shard
sub refused_shards
{
	my ($what) = @_;
	my $sql = join "\n", map { sprintf(q{INSERT INTO cdr VALUES (%d, '336%08d', '208-01-1-%d', now() - interval '2 years');}, $_, $_, $_) } 1 .. 40;
	my ($rc, $out, $err) = $coord->psql('postgres', $sql, on_error_stop => 0);
	my %seen;
	my $n = 0;
	while ($err =~ /ERROR:  $refusal/g) { $seen{$1} = 1; $n++; }
	is($n, 40, "$what: each of 40 single-row INSERTs is refused");
	return join ' ', sort keys %seen;
}
is(refused_shards('distributed'), join(' ', sort @shards), 'by each shard of cdr, on both workers');
$coord->safe_psql('postgres', q{
	CREATE ROLE cdr_writer LOGIN;
	GRANT INSERT ON cdr TO cdr_writer;
});
$err = error_of($coord, 'postgres', q{
	SET ROLE cdr_writer;
	INSERT INTO cdr VALUES (7, '33600000007', '208-01-1-7', now() - interval '2 years')});
like($err, qr/^ERROR:  0A000: $refusal/,
	"an INSERT-only writer is refused alike (Citus's metadata is readable by all)");

$err = error_of($coord, 'postgres', q{
	INSERT INTO cdr SELECT i, '336' || lpad(i::text, 8, '0'), '208-01-1-' || i, now() - interval '2 years'
	  FROM generate_series(1, 200) i});
like($err, $copy_refusal, 'INSERT ... SELECT of rows two years old is refused, not stored in clear');
$err = error_of($coord, 'postgres', q{
	INSERT INTO cdr SELECT i, '336' || lpad(i::text, 8, '0'), '208-01-1-' || i, now() - interval '1 hour'
	  FROM generate_series(1, 200) i});
like($err, $copy_refusal, 'so are fresh rows, which nothing would sweep at their deadline');
$err = error_of($coord, 'postgres', q{
	COPY cdr FROM PROGRAM 'printf "1,33600000001,208-01-1-1,2020-01-01\n2,33600000002,208-01-1-2,\n"' WITH (FORMAT csv)});
like($err, $copy_refusal, 'COPY through the coordinator is refused');
$err = error_of($coord, 'postgres', q{
	COPY cdr FROM PROGRAM 'echo 2,33600000002,208-01-1-2,' WITH (FORMAT csv)});
like($err, $copy_refusal, 'even of a row with no end yet');

# on the worker itself, straight into a shard: the same refusal, whoever
# writes and however; the table's owner cannot turn the triggers off
my $w1_shard = $w1->safe_psql('postgres', q{
	SET citus.override_table_visibility = off;
	SELECT c.relname FROM pg_class c JOIN pg_dist_shard s ON c.relname = 'cdr_' || s.shardid
	 WHERE s.logicalrelid = 'cdr'::regclass ORDER BY 1 LIMIT 1});
like($w1_shard, qr/^cdr_\d+$/, "worker1 holds shard $w1_shard");
# Citus names a shard's copy of a trigger after the shard id
(my $w1_trigger = $w1_shard) =~ s/^cdr_/retention_expire_after_/;
$w1->safe_psql('postgres', qq{
	CREATE ROLE cdr_owner;
	SET citus.enable_ddl_propagation = off;
	ALTER TABLE $w1_shard OWNER TO cdr_owner});
$err = error_of($w1, 'postgres', qq{
	INSERT INTO $w1_shard VALUES (1, '33600000001', '208-01-1-1', now() - interval '2 years')});
like($err, qr/^ERROR:  0A000: cannot write to shard "$w1_shard" \Q$refused\E/, 'a superuser writing to the shard on its worker is refused');
$err = error_of($w1, 'postgres', qq{
	SET session_replication_role = replica;
	INSERT INTO $w1_shard VALUES (1, '33600000001', '208-01-1-1', now() - interval '2 years')});
like($err, qr/^ERROR:  0A000: cannot write to shard "$w1_shard" \Q$refused\E/, 'so is one in replica mode');
$err = error_of($w1, 'postgres', qq{
	SET ROLE cdr_owner;
	ALTER TABLE $w1_shard DISABLE TRIGGER $w1_trigger});
is($err, qq{ERROR:  42501: only retention_admin can disable retention's triggers
DETAIL:  trigger $w1_trigger on public.$w1_shard is disabled.
HINT:  Retention's triggers stay ENABLE ALWAYS on the shards Citus copied them to; see docs/citus.md.
}, "the shard's owner cannot disable the trigger");
$err = error_of($w1, 'postgres', qq{
	SET ROLE cdr_owner;
	ALTER TABLE $w1_shard ENABLE REPLICA TRIGGER $w1_trigger});
like($err, qr/^ERROR:  42501: only retention_admin can disable retention's triggers\nDETAIL:  trigger $w1_trigger on public\.$w1_shard fires in replica mode only\./,
	'nor make it fire in replica mode only');
$err = error_of($w1, 'postgres', qq{
	SET ROLE cdr_owner;
	DROP TRIGGER $w1_trigger ON $w1_shard});
is($err, qq{ERROR:  42501: only retention_admin can drop retention's triggers
DETAIL:  trigger $w1_trigger on public.$w1_shard is dropped.
HINT:  Retention's triggers stay ENABLE ALWAYS on the shards Citus copied them to; see docs/citus.md.
}, "nor drop it");
# a superuser may; it is audited on the node
$w1->safe_psql('postgres', qq{
	ALTER TABLE $w1_shard DISABLE TRIGGER $w1_trigger;
	ALTER TABLE $w1_shard ENABLE ALWAYS TRIGGER $w1_trigger});
is($w1->safe_psql('postgres', qq{
	SELECT object, details->>'command', details->'problems'->>0 FROM retention.audit_log
	 WHERE action = 'enforcement_lost' ORDER BY id}),
	"public.$w1_shard|ALTER TABLE|trigger $w1_trigger on public.$w1_shard is disabled",
	"a superuser's disabling is audited on the worker");
is($coord->safe_psql('postgres', 'SELECT count(*) FROM cdr'), '0', 'nothing was stored');

is($coord->safe_psql('postgres', q{SELECT kind, note FROM retention.report() WHERE "table" = 'cdr'::regclass}),
	"not enforced|$note", 'report() says why cdr is not enforced, and counts nothing over its shell');
$err = error_of($coord, 'postgres', 'SELECT retention.verify()');
like($err, qr/^ERROR:  55000: retention is not enforced everywhere\nDETAIL:  .*public\.cdr: \Q$note\E[.;]/,
	'verify() raises, naming cdr and why');
is($coord->safe_psql('postgres', q{SELECT value FROM retention.metrics WHERE metric = 'not_enforced'}) > 0,
	1, 'the not_enforced metric counts it');

my ($rc, $out, $serr) = $coord->psql('postgres', 'CALL retention.sweep()');
like($serr, qr/WARNING:  sweep of table "cdr" failed: \Q$note\E\nDETAIL:  Nothing was swept\./,
	'the sweep warns that cdr was not swept');
is($coord->safe_psql('postgres', q{
	SELECT status, rows_deleted, rows_anonymized, error FROM retention.sweep_log
	 WHERE relid = 'cdr'::regclass ORDER BY id DESC LIMIT 1}),
	"failed|0|0|$note", 'sweep_log: failed, naming why, no rows claimed');
is($coord->safe_psql('postgres', q{
	SELECT count(*) FROM retention.sweep_log WHERE relid = 'cdr'::regclass AND status = 'done'}),
	'0', 'no sweep of cdr is logged as done');
($rc, $out, $serr) = $coord->psql('postgres', 'CALL retention.sweep(dry_run => true)');
like($serr, qr/WARNING:  dry run on table "cdr" failed: \Q$note\E/, 'a dry run says the same');

$err = error_of($coord, 'postgres', q{SELECT * FROM retention.anonymize('cdr'::regclass, '33600000001')});
is($err, qq{ERROR:  0A000: cannot anonymize the subscriber's rows of table "cdr"
DETAIL:  $note.
HINT:  Retention does not enforce Citus tables yet.  See docs/citus.md.
}, 'anonymize(tbl, subscriber) refuses it, saying why');
$err = error_of($coord, 'postgres', q{
	CREATE ROLE billing_reader;
	SELECT retention.expose('cdr', 'billing', 'billing_reader')});
is($err, qq{ERROR:  0A000: cannot expose table public.cdr
DETAIL:  $note.
HINT:  Retention does not enforce Citus tables yet.  See docs/citus.md.
}, 'expose() refuses it too');

$coord->safe_psql('postgres', q{
	CREATE TABLE promo (id bigint, caller retention.msisdn(billing), promo_cell retention.cell(marketing),
						ended_at timestamptz);
	SELECT retention.protect('promo', 'ended_at', subscriber => 'caller');
	SET citus.enable_unsafe_triggers = on;
	SELECT create_distributed_table('promo', 'id');
	SELECT retention.grant_consent('33600000001', now() + interval '1 month', now() + interval '1 year');
});
($rc, $out, $serr) = $coord->psql('postgres', q{SELECT retention.withdraw_consent('33600000001')});
is($serr, q{psql:<stdin>:1: WARNING:  marketing data of the subscriber is not anonymized in 1 tables that retention does not enforce
DETAIL:  The consent is withdrawn, but Citus manages these tables and no sweep reaches their rows: public.promo.
HINT:  See retention.report(), rows of kind "not enforced", and docs/citus.md.},
	'withdraw_consent() names the distributed table it cannot reach, and not as left to a sweep');
is($coord->safe_psql('postgres', q{
	SELECT count(*) FROM retention.consent WHERE subscriber = '33600000001' AND withdrawn_at IS NOT NULL}),
	'1', 'and the withdrawal is recorded');

# --- on a worker -----------------------------------------------------------------

for my $w ($w1, $w2)
{
	my $name = $w->name;
	is($w->safe_psql('postgres', q{SELECT count(*) FROM retention.protected_table}), '0',
		"$name: its catalog knows no protected table");
	like($w->safe_psql('postgres', q{SELECT kind || ': ' || note FROM retention.report() WHERE "table" = 'cdr'::regclass ORDER BY kind}),
		qr/^not enforced: \Q$note\E\nunprotected copy: /, "$name: report() says cdr is not enforced");
	$err = error_of($w, 'postgres', 'SELECT retention.verify()');
	like($err, qr/^ERROR:  55000: retention is not enforced everywhere\nDETAIL:  .*public\.cdr: \Q$note\E/,
		"$name: verify() raises");
}

# --- a shard move and a split: the new shards refuse as the old did ----------------

# the shards' triggers find their table through Citus's metadata each time,
# never by a shard's OID: a moved shard, and the shards a split makes,
# are known as cdr's on the node they reach, and so are refused there
$coord->safe_psql('postgres', sprintf(q{
	SELECT citus_move_shard_placement(s.shardid, '%s', %d, '%s', %d, shard_transfer_mode => 'block_writes')
	  FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
	  JOIN pg_dist_node n ON n.groupid = p.groupid
	 WHERE s.logicalrelid = 'cdr'::regclass AND n.nodeport = %d
	 ORDER BY s.shardid LIMIT 1},
	$w1->host, $w1->port, $w2->host, $w2->port, $w1->port));
is(refused_shards('after a shard move'), join(' ', sort @shards), 'every shard still refuses, the moved one on its new node');
my $split = $coord->safe_psql('postgres', sprintf(q{
	SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'cdr'::regclass ORDER BY shardid LIMIT 1}));
$coord->safe_psql('postgres', sprintf(q{
	SELECT citus_split_shard_by_split_points(%d,
		ARRAY[((SELECT shardminvalue::bigint + shardmaxvalue::bigint FROM pg_dist_shard WHERE shardid = %d) / 2)::text],
		ARRAY[(SELECT nodeid FROM pg_dist_node WHERE nodeport = %d), (SELECT nodeid FROM pg_dist_node WHERE nodeport = %d)],
		'block_writes')}, $split, $split, $w1->port, $w2->port));
my @after = split /\n/, $coord->safe_psql('postgres', q{
	SELECT 'cdr_' || shardid FROM pg_dist_shard WHERE logicalrelid = 'cdr'::regclass ORDER BY shardid});
is(scalar(@after), scalar(@shards) + 1, 'the split made two shards of one');
is(refused_shards('after a split'), join(' ', sort @after), 'and each of them refuses, on either worker');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM cdr'), '0', 'nothing was stored');

is($coord->safe_psql('postgres', q{SELECT kind, note FROM retention.report() WHERE "table" = 'cdr'::regclass}),
	"not enforced|$note", 'after a shard move, report() still says why');
for my $node (@nodes)
{
	($rc, $out, $serr) = $node->psql('postgres', 'SELECT retention.verify()');
	like($serr, qr/ERROR:  retention is not enforced everywhere/, $node->name . ': verify() still raises');
}

# --- the background worker, on the coordinator -------------------------------------

$coord->append_conf('postgresql.conf', "retention.enabled = on\nretention.sweep_interval = 1");
$coord->reload;
ok( $coord->poll_query_until('postgres', q{
		SELECT count(*) > 0 FROM retention.sweep_log
		 WHERE relid = 'cdr'::regclass AND run_by LIKE '%(retention sweeper)' AND status <> 'running'}),
	'the background worker sweeps the coordinator');
is($coord->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT status || ': ' || error, ', ') FROM retention.sweep_log
	 WHERE relid = 'cdr'::regclass AND run_by LIKE '%(retention sweeper)' AND status <> 'running'}),
	"failed: $note", 'and fails cdr with the reason, never "done"');
$coord->append_conf('postgresql.conf', "retention.enabled = off");
$coord->reload;

# --- unprotected: the triggers go from every shard ------------------------------

$coord->safe_psql('postgres', q{SELECT retention.unprotect('promo')});
is($coord->safe_psql('postgres', q{
	SELECT count(*) FROM retention.protected_table WHERE relid = 'promo'::regclass}), '0',
	'unprotect() takes a distributed table out of retention');
is(join('|', map { $_->safe_psql('postgres', q{
	SET citus.override_table_visibility = off;
	SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
	  LEFT JOIN pg_dist_shard s ON c.relname = 'promo_' || s.shardid
	 WHERE t.tgname LIKE 'retention_expire%' AND (c.relname = 'promo' OR s.logicalrelid = 'promo'::regclass)}) } @nodes),
	'0|0|0', "and its triggers go from the table and from every shard (a split's leftovers, which Citus drops later, aside)");
is(join('|', map { $_->safe_psql('postgres', q{
	SELECT count(*) > 0 FROM retention.audit_log
	 WHERE action = 'enforcement_lost' AND object LIKE 'public.promo\_%' AND details->>'command' = 'DROP TRIGGER'}) } $w1, $w2),
	't|t', "each worker audits the drop of its shards' triggers");
is($coord->safe_psql('postgres', q{SHOW citus.enable_unsafe_triggers}), 'off',
	'without leaving unsafe triggers allowed');
$coord->safe_psql('postgres', q{INSERT INTO promo VALUES (1, '33600000001', '208-01-1-1', now() - interval '1 day')});
is($coord->safe_psql('postgres', q{SELECT DISTINCT kind FROM retention.report() WHERE "table" = 'promo'::regclass ORDER BY 1}),
	"not enforced\nunprotected copy", 'it takes writes again, and report() says it is not enforced');

$coord->safe_psql('postgres', q{
	CREATE TABLE undist (id bigint, caller retention.msisdn(billing), ended_at timestamptz);
	SELECT retention.protect('undist', 'ended_at');
	SET citus.enable_unsafe_triggers = on;
	SELECT create_distributed_table('undist', 'id');
});
# undistribute_table() makes a new local table and drops the old one: the
# new one is not protected (report() and verify() say so) until protected
# again, as the refusal's hint says
$coord->safe_psql('postgres', q{SELECT undistribute_table('undist')});
is($coord->safe_psql('postgres', q{
	SELECT retention._citus_problem('undist') IS NULL,
		   (SELECT count(*) FROM retention.protected_table WHERE relid = 'undist'::regclass),
		   (SELECT string_agg(DISTINCT kind, ',') FROM retention.report() WHERE "table" = 'undist'::regclass)}),
	't|0|unprotected copy', 'undistributed, the table is local and unprotected, and report() says so');
$coord->safe_psql('postgres', q{
	SELECT retention.protect('undist', 'ended_at');
	INSERT INTO undist VALUES (1, '33600000001', now() - interval '2 years');
});
is($coord->safe_psql('postgres', q{SELECT count(*) FROM undist}), '0',
	'protected again, it is enforced: a row two years old is not stored');

# --- Citus installed after retention ----------------------------------------------

cluster('late', q{
	CREATE EXTENSION retention CASCADE;
	CREATE TABLE cdr (id bigint, caller retention.msisdn(billing), ended_at timestamptz);
	SELECT retention.protect('cdr', 'ended_at');
});
$coord->safe_psql('late', q{
	SET citus.enable_unsafe_triggers = on;
	SELECT create_reference_table('cdr');
});
is($coord->safe_psql('late', q{SELECT kind, note FROM retention.report() WHERE "table" = 'cdr'::regclass}),
	q{not enforced|Citus reference table: its rows are in shards on every node that retention's sweep and report do not reach},
	'Citus created after retention: report() says why');
($rc, $out, $serr) = $coord->psql('late', 'SELECT retention.verify()');
like($serr, qr/ERROR:  retention is not enforced everywhere/, 'and verify() raises');
is($w2->safe_psql('late', q{SELECT count(*) FROM retention.report() WHERE "table" = 'cdr'::regclass AND kind = 'not enforced'}),
	'1', 'on a worker too, where Citus brought retention with the table');

# --- a Citus version retention does not know ----------------------------------------

($rc, $out, $serr) = $coord->psql('postgres', q{
	\set VERBOSITY verbose
	BEGIN;
	UPDATE pg_extension SET extversion = '14.0-1' WHERE extname = 'citus';
	CREATE TABLE plain (id bigint, caller retention.msisdn(billing), ended_at timestamptz);
	SAVEPOINT s;
	SELECT retention.protect('plain', 'ended_at');
	ROLLBACK TO s;
	SELECT coalesce(rel::text, '(none)') || ': ' || problem FROM retention._citus_problems() WHERE rel IS NULL;
	ROLLBACK;
}, on_error_stop => 0);
like($serr, qr/ERROR:  0A000: cannot protect table "plain"\nDETAIL:  Citus 14\.0-1 is installed, a version retention does not know \(it knows Citus 11 to 13\): it cannot tell for sure which tables Citus manages\.\nHINT:  Use a release of retention that knows this version of Citus\./,
	'under an unknown Citus, protect() refuses even a local table');
like($out, qr/^\(none\): Citus 14\.0-1 is installed, a version retention does not know/m,
	'and report() and verify() say so');

$_->stop for @nodes;
done_testing();
