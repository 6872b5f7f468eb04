# Real writers as they ship (issue 17 items 2, 3): Kamailio's acc,
# missed_calls and acc_cdrs, and FreeRADIUS's radacct, created by the
# packages' own DDL files, protected with the statements of
# docs/writers/*.md (run from the pages themselves: ```sql blocks), then
# written as those daemons write, and swept.
#
# test/run-tests puts the packages' files in writers-ddl/ (test/writers/ddl.sh).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $ddl = 'writers-ddl';
for my $f (qw(kamailio/acc-create.sql kamailio/standard-create.sql kamailio/kamailio.cfg
			  freeradius/schema.sql))
{
	-s "$ddl/$f" or BAIL_OUT("missing $ddl/$f: test/run-tests copies the writers' DDL there");
}

# the ```sql blocks of a page, in order
sub doc_sql
{
	my ($page) = @_;
	my $text = slurp_file("docs/writers/$page");
	my @blocks = $text =~ /^```sql\n(.*?)^```$/msg;
	ok(@blocks > 0, "$page has SQL to run");
	return join("\n", @blocks);
}

my $node = PostgreSQL::Test::Cluster->new('writers');
$node->init;
$node->append_conf('postgresql.conf', q{
timezone = 'UTC'
log_timezone = 'UTC'
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

# --- Kamailio ---------------------------------------------------------------

sql(slurp_file("$ddl/kamailio/standard-create.sql"));
sql(slurp_file("$ddl/kamailio/acc-create.sql"));
# the columns kamailio.cfg's WITH_ACCDB adds, from the file itself
my @extra = slurp_file("$ddl/kamailio/kamailio.cfg") =~
	/^\s*(ALTER TABLE (?:acc|missed_calls) ADD COLUMN [^;]+;)/mg;
is(scalar @extra, 12, 'kamailio.cfg adds 12 columns to acc and missed_calls');
sql(join("\n", @extra));
is(sql(q{SELECT count(*) FROM pg_attribute WHERE attrelid IN ('acc'::regclass, 'missed_calls'::regclass)
		AND attnum > 0 AND NOT attnotnull}), '0', "Kamailio's columns are all NOT NULL");

# rows written before retention: SIP users are not all numbers
my $acc_cols = 'method, from_tag, to_tag, callid, sip_code, sip_reason, time, '
  . 'src_user, src_domain, src_ip, dst_ouser, dst_user, dst_domain';
sql(qq{
	INSERT INTO acc ($acc_cols) VALUES
		('INVITE', 'f1', 't1', 'c1\@192.0.2.4', '200', 'OK', now() - interval '2 years',
		 'alice', 'example.net', '192.0.2.4', '0612345678', '+33612345678', 'example.net'),
		('BYE', 'f1', 't1', 'c1\@192.0.2.4', '200', 'OK', now() - interval '2 years' + interval '1 minute',
		 'alice', 'example.net', '192.0.2.4', '0612345678', '+33612345678', 'example.net'),
		('INVITE', 'f2', 't2', 'c2\@192.0.2.5', '200', 'OK', now() - interval '1 hour',
		 'sip:bob\@example.net', 'example.net', '2001:db8::5', 'carol', 'carol', 'example.net');
	INSERT INTO missed_calls ($acc_cols) VALUES
		('INVITE', 'f3', '', 'c3\@192.0.2.6', '486', 'Busy Here', now() - interval '2 years',
		 'dave', 'example.net', '192.0.2.6', 'erin', 'erin', 'example.net');
});
sql(q{CREATE EXTENSION retention CASCADE});
sql(doc_sql('kamailio.md'));
is(sql(q{SELECT string_agg(relid::text, ',' ORDER BY relid::text) FROM retention.protected_table}),
	'acc,acc_cdrs,missed_calls', 'the three Kamailio tables are protected');
is(sql(q{SELECT string_agg(format('%s.%s %s', attrelid::regclass, attname, format_type(atttypid, atttypmod)), '; '
			ORDER BY attrelid::regclass::text, attnum)
		 FROM pg_attribute WHERE attrelid = 'acc'::regclass AND format_type(atttypid, NULL) LIKE 'retention.%'}),
	'acc.callid retention.ident(law_enforcement); acc.src_user retention.ident(billing,law_enforcement); '
	. 'acc.src_ip retention.ident(law_enforcement); acc.dst_ouser retention.ident(billing,law_enforcement); '
	. 'acc.dst_user retention.ident(billing,law_enforcement)',
	'acc: tagged by ALTER COLUMN ... TYPE alone, still NOT NULL');
is(sql(q{SELECT count(*) FROM retention.report() WHERE kind = 'not enforced'}), '0',
	'nothing keeps retention from applying to them');
is(sql(q{SELECT src_user || ' ' || src_ip FROM acc WHERE from_tag = 'f2'}),
	'sip:bob@example.net 2001:db8::5', 'existing values are kept as they were');

# as Kamailio writes: every column given, '' where it has nothing
sql(qq{
	INSERT INTO acc ($acc_cols) VALUES
		('INVITE', 'f4', 't4', 'c4\@192.0.2.7', '200', 'OK', now() AT TIME ZONE 'UTC',
		 '+33687654321', 'example.net', '192.0.2.7', '', '', '');
	INSERT INTO acc (method, from_tag, to_tag, callid, sip_code, sip_reason, time)
		VALUES ('BYE', 'f4', 't4', 'c4\@192.0.2.7', '200', 'OK', now() AT TIME ZONE 'UTC');
	INSERT INTO missed_calls ($acc_cols) VALUES
		('INVITE', 'f5', '', 'c5\@192.0.2.8', '404', 'Not Found', now() AT TIME ZONE 'UTC',
		 'frank', 'example.net', '192.0.2.8', '999', '999', 'example.net');
	INSERT INTO acc_cdrs (start_time, end_time, duration, src_user, dst_user, callid)
		VALUES ((now() AT TIME ZONE 'UTC') - interval '2 minutes', now() AT TIME ZONE 'UTC', 120,
				'+33687654321', 'grace', 'c4\@192.0.2.7'),
			   ('2000-01-01', '2000-01-01', 0, 'old', 'old', 'c0');
});
# a CDR that arrives past every window is not kept: no error either
my ($rc, $out, $err) = $node->psql('postgres', qq{
	INSERT INTO acc ($acc_cols) VALUES
		('INVITE', 'f6', 't6', 'c6', '200', 'OK', now() - interval '2 years', 'late', '', '192.0.2.9', '', '', '')});
is($rc . $err, '0', 'a late CDR raises nothing');

sql(q{CALL retention.sweep()});
is(sql(q{SELECT string_agg(from_tag || ':' || src_user || ':' || dst_user, ' ' ORDER BY id) FROM acc}),
	'f2:sip:bob@example.net:carol f4:+33687654321: f4::', 'acc: rows past the year deleted, the others intact');
is(sql(q{SELECT string_agg(from_tag || ':' || src_user, ' ' ORDER BY id) FROM missed_calls}),
	'f5:frank', 'missed_calls: likewise');
is(sql(q{SELECT string_agg(src_user || ':' || dst_user, ' ' ORDER BY id) FROM acc_cdrs}),
	'+33687654321:grace', 'acc_cdrs: ended in 2000, gone; the new one intact');
is(sql(q{SELECT status, count(*) FROM retention.sweep_log GROUP BY status}), 'done|3', 'every sweep done');
$node->safe_psql('postgres', q{SELECT retention.verify()});
pass('verify() passes on the Kamailio tables');

# --- FreeRADIUS -------------------------------------------------------------

sql(slurp_file("$ddl/freeradius/schema.sql"));
my $radcols = 'AcctSessionId, AcctUniqueId, UserName, Realm, NASIPAddress, NASPortId, NASPortType, '
  . 'AcctStartTime, AcctUpdateTime, AcctStopTime, AcctSessionTime, AcctAuthentic, ConnectInfo_start, '
  . 'ConnectInfo_Stop, AcctInputOctets, AcctOutputOctets, CalledStationId, CallingStationId, '
  . 'AcctTerminateCause, ServiceType, FramedProtocol, FramedIpAddress, FramedIpv6Address, '
  . 'FramedIpv6Prefix, FramedInterfaceId, DelegatedIpv6Prefix';
# queries.conf's start, interim-update and stop, with the values FreeRADIUS substitutes
sub rad_start
{
	my ($uid, $user, $ip, $ip6, $start) = @_;
	return qq{
	INSERT INTO radacct ($radcols) VALUES ('s-$uid', '$uid', '$user', NULLIF('', ''), '198.51.100.1',
		NULLIF('7', ''), 'Ethernet', $start, $start, NULL, 0, 'RADIUS', '', NULL, 0, 0,
		'00-aa-bb-cc-dd-ee:isp', '00-11-22-33-44-55', NULL, 'Framed-User', 'PPP',
		NULLIF('$ip', '')::inet, NULLIF('$ip6', '')::inet, NULLIF('', '')::inet, NULLIF('', ''),
		NULLIF('2001:db8:1234:5600::/56', '')::inet)
	ON CONFLICT (AcctUniqueId) DO UPDATE SET AcctStartTime = $start, AcctUpdateTime = $start
	WHERE radacct.AcctUniqueId = '$uid' AND radacct.AcctStopTime IS NULL};
}
sub rad_interim
{
	my ($uid, $ip, $at) = @_;
	return qq{
	UPDATE radacct SET FramedIPAddress = NULLIF('$ip', '')::inet, AcctSessionTime = 60,
		AcctInterval = (EXTRACT(EPOCH FROM $at) - EXTRACT(EPOCH FROM (COALESCE(AcctUpdateTime, AcctStartTime)))),
		AcctUpdateTime = $at, AcctInputOctets = (('0'::bigint << 32) + '1000'::bigint)
	WHERE AcctUniqueId = '$uid' AND AcctStopTime IS NULL};
}
sub rad_stop
{
	my ($uid, $at) = @_;
	return qq{
	UPDATE radacct SET AcctStopTime = $at, AcctUpdateTime = $at, AcctSessionTime = 120,
		AcctTerminateCause = 'User-Request', ConnectInfo_stop = ''
	WHERE AcctUniqueId = '$uid' AND AcctStopTime IS NULL};
}
my $old = q{TO_TIMESTAMP(EXTRACT(EPOCH FROM now() - interval '2 years'))};
my $now = q{TO_TIMESTAMP(EXTRACT(EPOCH FROM now()))};
# before retention: a session stopped two years ago, one still open since
sql(rad_start('u1', 'alice', '192.0.2.77', '2001:db8:1234:5678::1', $old) . ';' . rad_stop('u1', $old));
sql(rad_start('u2', 'bob', '192.0.2.78', '', $old));
sql(doc_sql('freeradius.md'));
ok(sql(q{SELECT count(*) FROM retention.protected_table WHERE relid = 'radacct'::regclass}) eq '1',
	'radacct is protected');
is(sql(q{SELECT count(*) FROM retention.report() WHERE kind = 'not enforced'}), '0',
	'nothing keeps retention from applying to it');
# after: start, interim updates, stop, as FreeRADIUS writes them
sql(rad_start('u3', 'carol', '203.0.113.5', '', $now));
sql(rad_interim('u3', '203.0.113.6', $now));
sql(rad_interim('u2', '192.0.2.79', $now));
sql(rad_start('u3', 'carol', '203.0.113.5', '', $now));	# a retransmitted start
sql(rad_start('u4', 'dave', '203.0.113.7', '', $now) . ';' . rad_stop('u4', $now));
# a stop that arrives late: anonymized on its way in
sql(rad_start('u5', 'erin', '203.0.113.8', '', $old) . ';' . rad_stop('u5', $old));

sql(q{CALL retention.sweep()});
is(sql(q{SELECT string_agg(concat_ws(' ', acctuniqueid, coalesce(username::text, '-'), framedipaddress,
								  coalesce(framedipv6address::text, '-'), coalesce(callingstationid::text, '-'),
								  delegatedipv6prefix, acctstoptime IS NULL), E'\n' ORDER BY acctuniqueid)
		 FROM radacct}),
	join("\n",
		'u1 - 192.0.2.0/24 2001:db8:1234::/48 - 2001:db8:1234::/48 f',
		'u2 bob 192.0.2.79 - 00-11-22-33-44-55 2001:db8:1234:5600::/56 t',
		'u3 carol 203.0.113.6 - 00-11-22-33-44-55 2001:db8:1234:5600::/56 t',
		'u4 dave 203.0.113.7 - 00-11-22-33-44-55 2001:db8:1234:5600::/56 f',
		'u5 - 203.0.113.0/24 - - 2001:db8:1234::/48 f'),
	'radacct: a year after the stop, addresses generalized and the rest erased; open sessions and recent ones intact');
is(sql(q{SELECT count(*) FROM radacct}), '5', 'no session lost');
$node->safe_psql('postgres', q{SELECT retention.verify()});
pass('verify() passes on radacct');

$node->stop;
done_testing();
