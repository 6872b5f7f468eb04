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
