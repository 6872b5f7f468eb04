-- test/bench/lib.sql: helpers for the benchmarks, loaded by test/bench/run
-- into database bench (schema bench) before any benchmark runs.  Not part
-- of the extension.

CREATE SCHEMA bench;

-- digits followed by their Luhn check digit: bench.luhn('49015420323751')
-- is the valid IMEI '490154203237518'
CREATE FUNCTION bench.luhn(digits text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $$
	SELECT digits || ((10 - sum(CASE WHEN (length(digits) - i) % 2 = 0
									 THEN (2 * d) / 10 + (2 * d) % 10
									 ELSE d END) % 10) % 10)::text
	  FROM (SELECT i, substr(digits, i, 1)::int AS d
			  FROM generate_series(1, length(digits)) i) x
$$;

-- load a table and all its indexes into shared buffers
CREATE FUNCTION bench.prewarm(tbl regclass)
RETURNS bigint
LANGUAGE sql
AS $$
	SELECT sum(pg_prewarm(c))::bigint
	  FROM (SELECT tbl AS c
			UNION ALL
			SELECT indexrelid::regclass FROM pg_index WHERE indrelid = tbl) r
$$;

-- a query's plan as EXPLAIN (COSTS OFF) prints it
CREATE FUNCTION bench.plan(query text)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
	line	text;
	plan	text := '';
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
		plan := plan || line || E'\n';
	END LOOP;
	RETURN plan;
END
$$;

-- raise unless two queries have the same plan once the names of the tables
-- they read (and of those tables' indexes) are made the same: the way to
-- check that a baseline and its retention side do the same work.
--
-- A tagged column used as text shows as "(caller)::text": EXPLAIN prints
-- the relabelling of an operator's argument.  Where the cast is binary
-- coercible (pg_cast.castmethod 'b', as for every tagged type) the executor
-- compiles it away, so it is no difference and is ignored here; a cast
-- through a function would look the same, which is why the data sets check
-- castmethod.
CREATE FUNCTION bench.assert_same_plan(query_a text, query_b text,
									   table_a text, table_b text)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
	relabel	constant text := '\(((\w+\.)?\w+)\)::text\y';
	a		text := regexp_replace(replace(bench.plan(query_a), table_a, '<table>'),
								   relabel, '\1', 'g');
	b		text := regexp_replace(replace(bench.plan(query_b), table_b, '<table>'),
								   relabel, '\1', 'g');
BEGIN
	IF a IS DISTINCT FROM b THEN
		RAISE EXCEPTION 'the two sides have different plans'
			USING DETAIL = format(E'%s:\n%s\n%s:\n%s', table_a, a, table_b, b);
	END IF;
	RETURN a;
END
$$;

-- raise unless two queries return the same rows (as multisets)
CREATE FUNCTION bench.assert_same_result(query_a text, query_b text)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
	n_a		bigint;
	n_b		bigint;
	differ	bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM (%s) a', query_a) INTO n_a;
	EXECUTE format('SELECT count(*) FROM (%s) b', query_b) INTO n_b;
	EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL (%s)) d', query_a, query_b) INTO differ;
	IF n_a <> n_b OR differ <> 0 THEN
		RAISE EXCEPTION 'the two sides return different results'
			USING DETAIL = format('%s rows and %s rows, %s of the first not in the second.',
								  n_a, n_b, differ);
	END IF;
	RETURN n_a;
END
$$;

-- write content to a file on the server, byte for byte (for pgbench
-- scripts): through a large object, as COPY TO would escape backslashes
CREATE FUNCTION bench.write_file(path text, content text)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
	lo	oid := lo_from_bytea(0, convert_to(content, 'UTF8'));
BEGIN
	PERFORM lo_export(lo, path);
	PERFORM lo_unlink(lo);
	RETURN path;
END
$$;

-- Run pgbench against this database: `pgbench -n ARGS`, with the host,
-- port and user of this session.  With log, each transaction's latency
-- is logged (--log) and its percentiles returned.  Raises, with pgbench's
-- output, if pgbench fails (a failed transaction included).  The calling
-- session waits in this one statement.
--   tps            transactions per second, without connection time
--   transactions   transactions done
--   ms             their time in ms: transactions / tps, for a `speed`
--                  sample that leaves out connecting
--   p50_ms, p99_ms, max_ms   latency percentiles (with log only)
--   output         what pgbench printed
CREATE SEQUENCE bench.pgbench_run;
CREATE FUNCTION bench.pgbench(args text, log boolean DEFAULT false,
							  OUT tps numeric, OUT transactions bigint, OUT ms numeric,
							  OUT p50_ms numeric, OUT p99_ms numeric, OUT max_ms numeric,
							  OUT output text)
LANGUAGE plpgsql
AS $$
DECLARE
	dir		text := current_setting('bench.tmp');
	prefix	text := format('pgbench_%s_%s', pg_backend_pid(), nextval('bench.pgbench_run'));
	cmd		text;
	status	text;
BEGIN
	cmd := format('pgbench -n -h %s -p %s -U %s %s %s %s 2>&1; echo "pgbench exit status $?"',
				  split_part(current_setting('unix_socket_directories'), ',', 1),
				  current_setting('port'), current_user,
				  CASE WHEN log THEN format('--log --log-prefix=%s/%s', dir, prefix) ELSE '' END,
				  args, current_database());
	CREATE TEMP TABLE IF NOT EXISTS bench_pgbench_output (n serial, line text);
	TRUNCATE bench_pgbench_output;
	-- one line a row, whatever it holds
	EXECUTE format($c$COPY bench_pgbench_output (line) FROM PROGRAM %L
					  (FORMAT csv, DELIMITER E'\x01', QUOTE E'\x02')$c$, cmd);
	SELECT string_agg(line, E'\n' ORDER BY n) INTO output FROM bench_pgbench_output;
	SELECT substring(line FROM 'exit status (\d+)') INTO status
	  FROM bench_pgbench_output WHERE line LIKE 'pgbench exit status %';
	IF status IS DISTINCT FROM '0' THEN
		RAISE EXCEPTION 'pgbench failed (exit status %)', coalesce(status, '?')
			USING DETAIL = output, HINT = cmd;
	END IF;
	tps := substring(output FROM 'tps = ([0-9.]+) \(without initial connection time\)')::numeric;
	transactions := substring(output FROM 'number of transactions actually processed: (\d+)')::bigint;
	IF tps IS NULL OR transactions IS NULL THEN
		RAISE EXCEPTION 'could not read tps and transactions from pgbench''s output'
			USING DETAIL = output;
	END IF;
	ms := round(1000 * transactions / nullif(tps, 0), 3);
	IF log THEN
		-- lines "client transaction latency_us script epoch us [lag]", one file a thread
		SELECT round(percentile_disc(0.5) WITHIN GROUP (ORDER BY us) / 1000, 3),
			   round(percentile_disc(0.99) WITHIN GROUP (ORDER BY us) / 1000, 3),
			   round(max(us) / 1000, 3)
		  INTO p50_ms, p99_ms, max_ms
		  FROM (SELECT split_part(l, ' ', 3)::numeric AS us
				  FROM pg_ls_dir(dir) f,
					   regexp_split_to_table(pg_read_file(dir || '/' || f), E'\n') l
				 WHERE f LIKE prefix || '.%' AND l <> '') x;
	END IF;
END
$$;

-- Empty tbl and fill it again with the rows of source (same columns),
-- faster than an INSERT into indexed tables: its indexes and constraints
-- are dropped first and built again after, under the same names.  Triggers
-- do not fire (session_replication_role = replica, as in a restore), so a
-- protected table takes due rows as they are.  Returns the rows loaded.
-- For a plain table (a partition cannot drop its indexes); VACUUM (FREEZE,
-- ANALYZE) it and CHECKPOINT after, outside any transaction.
CREATE FUNCTION bench.reload(tbl regclass, source regclass)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
	defs	text[];
	def		text;
	n		bigint;
BEGIN
	-- constraints with an index first (a primary key), then the other indexes
	SELECT array_agg(d ORDER BY o)
	  INTO defs
	  FROM (SELECT 1 AS o, format('ALTER TABLE %s ADD CONSTRAINT %I %s', tbl, c.conname,
								  pg_get_constraintdef(c.oid)) AS d
			  FROM pg_constraint c
			 WHERE c.conrelid = tbl AND c.conindid <> 0
			UNION ALL
			SELECT 2, pg_get_indexdef(i.indexrelid)
			  FROM pg_index i
			 WHERE i.indrelid = tbl
			   AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)) x;
	EXECUTE format('TRUNCATE %s', tbl);
	FOR def IN SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', tbl, c.conname)
				 FROM pg_constraint c WHERE c.conrelid = tbl AND c.conindid <> 0
			   UNION ALL
			   SELECT format('DROP INDEX %s', i.indexrelid::regclass)
				 FROM pg_index i WHERE i.indrelid = tbl
				  AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid) LOOP
		EXECUTE def;
	END LOOP;
	SET LOCAL session_replication_role = replica;
	EXECUTE format('INSERT INTO %s SELECT * FROM %s', tbl, source);
	GET DIAGNOSTICS n = ROW_COUNT;
	SET LOCAL session_replication_role = origin;
	FOREACH def IN ARRAY coalesce(defs, '{}') LOOP
		EXECUTE def;
	END LOOP;
	RETURN n;
END
$$;

-- wait until the query condition (a boolean expression, in SQL) is true,
-- checking every 10 ms; raise if it is not after timeout
CREATE FUNCTION bench.wait_until(condition text, timeout interval DEFAULT '30 s')
RETURNS interval
LANGUAGE plpgsql
AS $$
DECLARE
	started	timestamptz := clock_timestamp();
	ok		boolean;
BEGIN
	LOOP
		EXECUTE 'SELECT ' || condition INTO ok;
		EXIT WHEN ok;
		IF clock_timestamp() - started > timeout THEN
			RAISE EXCEPTION 'waited % for: %', timeout, condition;
		END IF;
		PERFORM pg_sleep(0.01);
	END LOOP;
	RETURN clock_timestamp() - started;
END
$$;
