# SweepFixture: the CDR table the worker's interruption tests sweep, and
# what must hold of it whatever happens to a sweep.
#
# 32100 rows: 30100 ended 6 months ago (cell and imsi, kept for network
# security, are due; caller, kept for billing, is not), 1000 ended 2 years
# ago (wholly due), 1000 ended yesterday (nothing due); the first 100 rows
# belong to a subscriber under a judicial hold and keep everything.  A
# statement trigger makes every batch last a few milliseconds more, so that
# a signal lands inside a batch.
package SweepFixture;

use strict;
use warnings;
use Test::More;

our $held = '33699999999';
our $partly = q{ended_at < now() - interval '3 months' AND ended_at > now() - interval '1 year'};
our $anonymized = qq{SELECT count(*) FROM cdr WHERE $partly AND cell IS NULL};
our $logged = q{SELECT coalesce(sum(rows_anonymized), 0) FROM retention.sweep_log};

# create database $db with the table, protected, and the hold
sub create
{
	my ($node, $db) = @_;
	$node->safe_psql('postgres', qq{CREATE DATABASE $db});
	$node->safe_psql($db, qq{
		CREATE EXTENSION retention CASCADE;
		CREATE TABLE cdr (id integer PRIMARY KEY,
						  caller retention.msisdn(billing),
						  cell retention.cell(network_security),
						  imsi retention.imsi(network_security),
						  ended_at timestamptz);
		CREATE INDEX ON cdr (caller);
		INSERT INTO cdr
		SELECT i, CASE WHEN i <= 100 THEN '$held' ELSE '336' || lpad(i::text, 8, '0') END,
			   '208-01-1-' || i, '20801' || lpad(i::text, 10, '0'),
			   CASE WHEN i <= 30100 THEN now() - interval '6 months'
					WHEN i <= 31100 THEN now() - interval '2 years'
					ELSE now() - interval '1 day' END
		  FROM generate_series(1, 32100) i;
		SELECT retention.protect('cdr', 'ended_at', subscriber => 'caller');
		SELECT retention.hold('cdr', '$held', now() - interval '1 year', now(),
							  'judicial_request', 'J-2026-1', now() + interval '1 month');
		CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql
			AS \$\$BEGIN PERFORM pg_sleep(0.003); RETURN NULL; END\$\$;
		CREATE TRIGGER slow AFTER UPDATE OR DELETE ON cdr
			FOR EACH STATEMENT EXECUTE FUNCTION slow();
		ANALYZE cdr;
	});
}

# what must hold at any moment: $kept is how many billing values in their
# window must still be there
sub check_invariants
{
	my ($node, $db, $when, $kept) = @_;
	is($node->safe_psql($db, q{SELECT count(*) FROM cdr WHERE (cell IS NULL) <> (imsi IS NULL)}),
		'0', "$when: no row half-anonymized");
	is($node->safe_psql($db, qq{SELECT count(*) FROM cdr WHERE $partly AND caller IS NOT NULL}),
		$kept, "$when: every billing value still in its window is kept");
	is( $node->safe_psql($db, q{
			SELECT count(*) FROM cdr
			 WHERE ended_at > now() - interval '2 days' AND cell IS NOT NULL AND imsi IS NOT NULL}),
		'1000', "$when: rows with nothing due are untouched");
	is( $node->safe_psql($db, qq{
			SELECT count(*) FROM cdr WHERE caller = '$held' AND cell IS NOT NULL AND imsi IS NOT NULL}),
		'100', "$when: held rows keep everything");
	is($node->safe_psql($db, $logged), $node->safe_psql($db, $anonymized),
		"$when: sweep_log counts exactly the committed work");
}

1;
