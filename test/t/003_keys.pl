# Pseudonymization keys and pg_dump: a dump never carries keys; the
# documented export/import procedure (docs/anonymize.md, "Keys and pg_dump") carries
# them over on purpose, so that pseudonyms computed after the restore match
# those in the restored data.  No key reaches the server log or
# pg_stat_statements on the way, even with log_statement = all.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('keys');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, retention'
pg_stat_statements.track = all
log_statement = all
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE DATABASE src;
	CREATE DATABASE dst;
});
$node->safe_psql('src', q{
	CREATE EXTENSION pg_stat_statements;
	CREATE EXTENSION retention CASCADE;
	CREATE ROLE keeper LOGIN SUPERUSER;	-- key bytes are for superusers only
	SELECT retention.rotate_key();
	CREATE TABLE cdr (id integer PRIMARY KEY, caller retention.msisdn(billing));
	INSERT INTO cdr
	SELECT i, retention.anonymize(('3361234' || lpad(i::text, 4, '0'))::retention.msisdn, 'hash')
	  FROM generate_series(1, 100) i;
});

my $keys_sql = q{SELECT string_agg(encode(key, 'hex'), ',' ORDER BY id) FROM retention.key};
my $current_sql = q{SELECT id FROM retention.key_info WHERE is_current};
my $hash_sql = q{SELECT retention.anonymize('33612345678'::retention.msisdn, 'hash')};
my $rehash_sql = q{
	SELECT count(*) FROM cdr
	 WHERE caller = retention.anonymize(('3361234' || lpad(id::text, 4, '0'))::retention.msisdn, 'hash')};

my @src_keys = split /,/, $node->safe_psql('src', $keys_sql);
is(scalar @src_keys, 2, 'the source has two keys (one retired)');
my $src_current = $node->safe_psql('src', $current_sql);
my $src_pseudonym = $node->safe_psql('src', $hash_sql);
like($src_pseudonym, qr/^~k$src_current:[0-9a-f]{24}$/, 'pseudonyms name the current key');

# a plain dump has no key, nor does a custom-format one
my $plain = $node->basedir . '/src.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('src'), '-f', $plain ], 'plain pg_dump');
my $dump = slurp_file($plain);
like($dump, qr/CREATE EXTENSION IF NOT EXISTS retention/, 'the dump creates the extension');
like($dump, qr/~k$src_current:/, 'the dump has the pseudonymized data');
unlike($dump, qr/COPY retention\.key\b/, 'the dump has no copy of retention.key');
is(scalar(grep { index($dump, $_) >= 0 } @src_keys), 0, 'no key bytes in the plain dump');

my $custom = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $custom ],
	'custom-format pg_dump');
my ($list) = run_command([ 'pg_restore', '-l', $custom ]);
unlike($list, qr/TABLE DATA retention key/, 'no data of retention.key in the custom-format dump');
like($list, qr/TABLE DATA public cdr/, 'the custom-format dump has the data');

# restored without its keys: the data is there, but new pseudonyms differ
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('dst'), '-f', $plain ],
	'plain restore');
my @fresh_keys = split /,/, $node->safe_psql('dst', $keys_sql);
is(scalar @fresh_keys, 1, 'the restored database has one key of its own');
ok(!grep({ $_ eq $fresh_keys[0] } @src_keys), 'and it is not one of the source keys');
isnt($node->safe_psql('dst', $hash_sql), $src_pseudonym, 'so the same number gets another pseudonym');
is($node->safe_psql('dst', $rehash_sql), '0', 'and restored pseudonyms cannot be matched');

# the documented procedure, run by a superuser: export ...
my $keyfile = $node->basedir . '/retention-keys.csv';
$node->command_ok(
	[
		'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('src') . ' user=keeper',
		'-c', "\\copy (SELECT * FROM retention.export_keys()) TO '$keyfile' WITH (FORMAT csv)"
	],
	'export_keys through \copy');
my @lines = split /\n/, slurp_file($keyfile);
is(scalar @lines, 2, 'both keys exported');

# ... and import, from the file through a temporary table
my $import = $node->basedir . '/import.sql';
open my $fh, '>', $import or die "could not write $import: $!";
print $fh <<"EOS";
BEGIN;
CREATE TEMP TABLE retention_keys (id integer, key bytea, created_at timestamptz, retired_at timestamptz);
\\copy retention_keys FROM '$keyfile' WITH (FORMAT csv)
SELECT retention.import_key(id, key, created_at, retired_at) FROM retention_keys ORDER BY created_at, id;
COMMIT;
EOS
close $fh;
my $import_cmd = [
	'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
	'-d', $node->connstr('dst') . ' user=keeper', '-f', $import
];
my ($out) = run_command($import_cmd);
is($out, "t\nt", 'import_key added both keys');
($out) = run_command($import_cmd);
is($out, "f\nf", 'importing again changes nothing');

is($node->safe_psql('dst', $current_sql), $src_current, 'the source current key is current again');
is($node->safe_psql('dst', $hash_sql), $src_pseudonym, 'the same number gets the same pseudonym');
is($node->safe_psql('dst', $rehash_sql), '100', 'restored pseudonyms match again');
is($node->safe_psql('dst', q{SELECT count(*) FROM retention.key_info WHERE NOT is_current}), '2',
	'the restored database\'s own key was retired');
is($node->safe_psql('src', q{SELECT count(*) FROM retention.audit_log WHERE action = 'export_keys'}), '1',
	'the export is audited');
is($node->safe_psql('dst', q{SELECT string_agg(action || ' by ' || as_role, ',') FROM retention.audit_log
							   WHERE action = 'import_key'}),
	'import_key by keeper,import_key by keeper', 'each import is audited');
is($node->safe_psql('dst', 'SELECT valid FROM retention.verify_audit_log()'), 't',
	'the audit chain verifies after restore and import');

# no key in the server log, nor in pg_stat_statements
my @all_keys = (@src_keys, @fresh_keys);
my $log = slurp_file($node->logfile);
like($log, qr/statement: .*import_key/, 'the server log has the statements');
is(scalar(grep { index(lc($log), $_) >= 0 } @all_keys), 0, 'no key bytes in the server log');
for my $db ('src', 'dst')
{
	$node->safe_psql($db, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
	my $statements = $node->safe_psql($db, 'SELECT string_agg(query, E\'\n\') FROM pg_stat_statements');
	like($statements, qr/import_key|export_keys|anonymize/, "pg_stat_statements tracked $db");
	is(scalar(grep { index(lc($statements), $_) >= 0 } @all_keys), 0,
		"no key bytes in pg_stat_statements ($db)");
}

unlink $keyfile;
$node->stop;
done_testing();
