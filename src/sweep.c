/*-------------------------------------------------------------------------
 *
 * sweep.c
 *	  The sweep: everything that fell due after it was written, applied
 *	  table by table, batch by batch (SPEC 3.8).  The one engine behind
 *	  CALL retention.sweep() and the background worker.
 *
 * A run fixes its cutoff (the moment it decides for) once.  For each
 * protected table it takes a session advisory lock (a second sweep skips
 * a table that is being swept), writes its sweep_log row and commits, so
 * that a crash leaves a trace.  Then each leaf relation is swept:
 *
 *	- a partition whose bound proves every row fully due, with nothing held
 *	  or consented in it, is truncated whole (the fast path), under a short
 *	  lock_timeout: if it cannot be locked at once it is swept row by row
 *	  next time;
 *	- otherwise the heap is walked in block ranges (TID range scans, so a
 *	  run reads the table once), each batch one DELETE of the fully due rows
 *	  and one UPDATE of the rows with something to anonymize (the BEFORE
 *	  UPDATE trigger applies the rules of expiry.c as of the cutoff), in a
 *	  subtransaction, committed before the next.  Rows are locked only for
 *	  the batch; a batch that meets a row locked by someone else for more
 *	  than a moment is redone with SKIP LOCKED, and the locked rows are
 *	  counted as skipped, for the next run.
 *
 * A sweep's WAL is flushed by the commits of live writers too, so a sweep
 * can be paced: retention.batch_delay pauses between batches, and
 * retention.max_wal_rate caps the WAL it writes per second, with a delay
 * point in _sweep_row() (called for every candidate row of a batch) as
 * VACUUM has vacuum_delay_point() under vacuum_cost_delay.  Time paused is
 * logged.
 *
 * An error in one table is recorded in its sweep_log row and the others
 * still run.  A cancel or shutdown stops the run between statements; what
 * was committed stays, the batch in flight is rolled back whole.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/sweep.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/instrument.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/pmsignal.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "access/stratnum.h"

#include "expiry.h"

PG_FUNCTION_INFO_V1(retention_sweep);
PG_FUNCTION_INFO_V1(retention_sweep_row);

/*
 * The locks of locks.c, which no other role can take: RETENTION_LOCK_SWEEP,
 * a session lock, keeps two sweeps off one table; RETENTION_LOCK_HOLD is
 * taken shared by each batch and exclusive by hold(), so that once hold()
 * returns no batch that could not see it is running.
 */


/*
 * What a sweep says of the error it caught in a table, instead of the
 * error's own detail and context: these quote the failing row ("Failing
 * row contains (...)" of a CHECK or NOT NULL violation, "Key (caller)=(...)"
 * of a unique or foreign key violation), and a sweep's warnings go to the
 * server log.  The message names the constraint, not the values.
 */
#define SWEEP_ERROR_DETAIL \
	"The error's detail and context are not shown: they may quote the row's personal data."

/* what _sweep_row() says of a row */
#define ROW_NOTHING		0
#define ROW_ANONYMIZE	1
#define ROW_DELETE		2
#define ROW_HELD		3

typedef struct SweepRun
{
	TimestampTz cutoff;			/* fixed for the whole run */
	int			batch_size;
	bool		dry_run;
	bool		nonatomic;		/* may commit between batches */
	int64		run_id;
	char	   *run_by;
	Oid			owner;			/* statements run as the extension's owner */
	bool		legacy_locks;	/* extension still at 1.0: its hold() locks too */
} SweepRun;

typedef struct SweepCounts
{
	int64		scanned;
	int64		anonymized;
	int64		deleted;
	int64		held;
	int64		skipped;
	int64		kept;			/* due, yet left as they were by the table's
								 * own triggers: a failure */
	int			truncated;
	int64		paused_us;		/* batch_delay and max_wal_rate pauses */
} SweepCounts;

/* one leaf relation being swept, and its statements */
typedef struct SweepLeaf
{
	SweepRun   *run;
	Oid			root;
	Oid			leaf;
	Oid			leaf_owner;		/* the batches run as it, restricted */
	RetentionTable *t;			/* valid at the leaf's start only */
	bool		keep_anonymized;
	bool		has_holds;
	Datum		maxcut;			/* no row with ended_at past it has anything due */
	Oid			maxcut_type;
	char	   *qualified;		/* ONLY "schema"."leaf" */
	char	   *status_expr;	/* retention._sweep_row(...) */
	char	   *ended_at;		/* quoted column name */
	BlockNumber from;
	BlockNumber to;
	bool		skip_locked;
	bool		recheck;		/* other BEFORE triggers may undo a batch */
	SweepCounts *counts;
	MemoryContext cxt;			/* lives as long as the leaf's sweep */
} SweepLeaf;

static void hold_lock_shared(SweepLeaf *l);

/* -------------------------------------------------------------------------
 * Helpers
 * -------------------------------------------------------------------------
 */

/*
 * Pacing.  pace_active is set while a batch's DELETE or UPDATE runs: only
 * then does _sweep_row() stop to keep the WAL the sweep writes under
 * retention.max_wal_rate.  The WAL written since pace_mark_bytes is
 * weighed every PACE_SLICES-th of a second's allowance, so a sweep writes
 * its WAL in slices instead of bursts, and never banks more than one slice
 * of credit from a quiet spell.
 */
#define PACE_SLICES		100		/* a slice: 10 ms of the allowed rate */

static bool pace_active = false;
static uint64 pace_mark_bytes;
static TimestampTz pace_mark_time;
static int64 pace_paused_us = 0;	/* in _sweep_row(), not yet in the counts */

static void
pace_reset(void)
{
	pace_mark_bytes = pgWalUsage.wal_bytes;
	pace_mark_time = GetCurrentTimestamp();
}

/* sleep ms, giving way to interrupts; returns the microseconds paused */
static int64
sweep_pause(long ms)
{
	static uint32 delay_event = 0;
	TimestampTz start = GetCurrentTimestamp();
	TimestampTz end = TimestampTzPlusMilliseconds(start, ms);
	long		left;

	if (delay_event == 0)
		delay_event = RETENTION_WAIT_EVENT("RetentionSweepDelay");
	/* a latch set for something else (a reload) ends a wait early */
	while ((left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), end)) > 0)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, delay_event);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return GetCurrentTimestamp() - start;
}

/* the delay point: wait until the WAL written since the mark is allowed */
static void
sweep_delay_point(void)
{
	uint64		bytes;
	double		per_sec;
	int64		allowed_us;
	int64		elapsed_us;

	per_sec = retention_max_wal_rate * 1024.0;
	bytes = pgWalUsage.wal_bytes - pace_mark_bytes;
	if (bytes < per_sec / PACE_SLICES)
		return;
	allowed_us = (int64) (bytes * (double) USECS_PER_SEC / per_sec);
	elapsed_us = GetCurrentTimestamp() - pace_mark_time;
	/* rounded up: never faster than the rate */
	if (allowed_us > elapsed_us)
		pace_paused_us += sweep_pause((long) ((allowed_us - elapsed_us + 999) / 1000));
	pace_reset();
}

static void
sweep_commit(SweepRun *run)
{
	if (!run->nonatomic)
		return;
	SPI_commit();
}

/* run an SPI statement, returning SPI_processed; raises on failure */
static uint64
run_sql_nulls(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
			  int expected)
{
	int			ret;

	/*
	 * The previous statement's result is read by now.  SPI keeps results
	 * until SPI_finish() unless freed, and a run has thousands of batches.
	 */
	if (SPI_tuptable != NULL)
	{
		SPI_freetuptable(SPI_tuptable);
		SPI_tuptable = NULL;
	}
	ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (ret != expected)
		elog(ERROR, "SPI_execute_with_args(\"%s\") failed: %s", sql, SPI_result_code_string(ret));
	return SPI_processed;
}

static inline uint64
run_sql(const char *sql, int nargs, Oid *types, Datum *values, int expected)
{
	return run_sql_nulls(sql, nargs, types, values, NULL, expected);
}

static Datum
first_value(bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
}

/* the batch waits this long for a row or partition lock, then steps aside */
static void
set_lock_timeout(void)
{
	run_sql(psprintf("SELECT pg_catalog.set_config('lock_timeout', '%dms', true)",
					 retention_lock_timeout), 0, NULL, NULL, SPI_OK_SELECT);
}

/* rows per heap block of rel, from its statistics (a guess if never analyzed) */
static double
rows_per_block(Relation rel)
{
	if (rel->rd_rel->relpages > 0 && rel->rd_rel->reltuples > 0)
		return rel->rd_rel->reltuples / rel->rd_rel->relpages;
	return 60;
}

/*
 * Run step in a subtransaction as the extension's owner (see
 * retention_run_as()); its errors are the run's.
 */
static void
run_as_owner(SweepRun *run, void (*step) (void *arg), void *arg)
{
	ErrorData  *edata = retention_run_as(run->owner, step, arg);

	if (edata != NULL)
		ReThrowError(edata);
}

static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/*
 * The ended_at past which nothing of table t is due at cut (no later row
 * has anything due), as a timestamptz; for a column without time zone,
 * pushed later by any zone's offset (the row test that follows is exact).
 */
TimestampTz
retention_table_maxcut(const RetentionTable *t, const RetentionCutoffs *cut)
{
	bool		exact;
	TimestampTz maxcut = expiry_due_bound(t, cut, &exact);

	if (t->ended_at_type == TIMESTAMPOID && !TIMESTAMP_NOT_FINITE(maxcut))
		maxcut += (TimestampTz) 15 * USECS_PER_HOUR;
	return maxcut;
}

/*
 * The arguments of retention._sweep_row() and retention._column_states()
 * for rows "x" of relation relid (protected itself or through root): the
 * consent and hold lookups are subqueries, evaluated only for rows that get
 * that far, and only written when the table can have consents or holds.
 * moment is the SQL of the moment consents and holds are checked at.
 */
static char *
row_args(Oid relid, Oid root, bool has_holds, const char *moment, char **ended_at,
		 bool c_lookups)
{
	RetentionTable *t = retention_table(relid);
	Relation	rel = relation_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData s;
	const char *sub = NULL;
	int			i;

#define ATTNAME(a) quote_identifier(NameStr(TupleDescAttr(desc, (a) - 1)->attname))

	if (t->subscriber != InvalidAttrNumber)
		sub = ATTNAME(t->subscriber);
	initStringInfo(&s);
	appendStringInfo(&s, "x.tableoid, x.%s, ", ATTNAME(t->ended_at));
	if (t->anchor != InvalidAttrNumber)
		appendStringInfo(&s, "x.%s, ", ATTNAME(t->anchor));
	else
		appendStringInfoString(&s, "NULL::timestamptz, ");
	if (c_lookups)
		appendStringInfo(&s, "%s, %s",
						 expiry_has_consents(t) && sub ? "NULL::boolean" : "false",
						 has_holds && sub ? "-1" : "NULL::integer");
	else if (t->has_location && sub)
		appendStringInfoString(&s, "NULL::boolean, ");	/* C looks both up */
	else if (t->has_marketing && sub)
		appendStringInfo(&s, "EXISTS (SELECT 1 FROM retention.consent c WHERE c.subscriber = x.%s::text "
						 "AND " CONSENT_ACTIVE_SQL("c", "%s") "), ",
						 sub, moment);
	else
		appendStringInfoString(&s, "false, ");
	if (c_lookups)
		;						/* the hold's argument is written above */
	else if (has_holds && sub)
	{
		/* a timestamp column's value is an instant in retention's zone only */
		char	   *instant = t->ended_at_type == TIMESTAMPOID ?
			psprintf("(x.%s AT TIME ZONE %s)", ATTNAME(t->ended_at),
					 quote_literal_cstr(retention_zone_name())) :
			psprintf("x.%s", ATTNAME(t->ended_at));

		appendStringInfo(&s, "(SELECT max(CASE WHEN h.reason = 'billing_dispute' THEN 1 ELSE 2 END) "
						 "FROM retention.hold h WHERE h.relid = %u::oid::regclass AND h.subscriber = x.%s::text "
						 "AND " HOLD_ACTIVE_SQL("h", "%s") " "
						 "AND %s BETWEEN h.from_ts AND h.to_ts)",
						 root, sub, moment, instant);
	}
	else
		appendStringInfoString(&s, "NULL::integer");
	for (i = 0; i < t->ncolumns; i++)
		appendStringInfo(&s, ", x.%s", ATTNAME(t->columns[i].attnum));
	/* then whether the operator's subscriber originated it */
	if (t->originated != InvalidAttrNumber)
		appendStringInfo(&s, ", x.%s", ATTNAME(t->originated));
	if (ended_at)
		*ended_at = pstrdup(ATTNAME(t->ended_at));
#undef ATTNAME
	relation_close(rel, NoLock);
	return s.data;
}

char *
retention_row_args(Oid relid, Oid root, bool has_holds, const char *moment, char **ended_at)
{
	return row_args(relid, root, has_holds, moment, ended_at, false);
}

/*
 * The same for a sweep batch, which runs as the table's owner: the consent
 * and hold of each row are not subqueries on retention's tables, which the
 * owner may not read, but looked up by _sweep_row() itself, as the
 * extension's owner (consent NULL: look it up; hold -1: look it up), as of
 * the batch's transaction.
 */
static char *
sweep_row_args(Oid relid, bool has_holds, char **ended_at)
{
	return row_args(relid, InvalidOid, has_holds, NULL, ended_at, true);
}

/* the WHERE clause of a batch: its block range, the prefilter, the state */
static char *
batch_where(SweepLeaf *l, int state)
{
	return psprintf("x.ctid >= '(%u,0)'::tid AND x.ctid < '(%u,0)'::tid "
					"AND x.%s <= $1 AND %s = %d",
					l->from, l->to, l->ended_at, l->status_expr, state);
}

/* -------------------------------------------------------------------------
 * One batch
 * -------------------------------------------------------------------------
 */

/* the ctids an UPDATE ... RETURNING ctid returned, as a tid[] */
static Datum
returned_tids(void)
{
	Datum	   *tids = palloc(sizeof(Datum) * Max(SPI_processed, 1));
	uint64		i;
	int			n = 0;

	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			tids[n++] = d;
	}
	return PointerGetDatum(construct_array(tids, n, TIDOID, sizeof(ItemPointerData), false,
										   TYPALIGN_SHORT));
}

static void
batch_step(void *arg)
{
	SweepLeaf  *l = (SweepLeaf *) arg;
	Oid			types[2] = {l->maxcut_type, TIMESTAMPTZOID};
	Datum		values[2] = {l->maxcut, TimestampTzGetDatum(l->run->cutoff)};
	SweepCounts *c = l->counts;
	int64		skipped_before = c->skipped;
	int64		anonymized_before = c->anonymized;
	Datum		updated = (Datum) 0;
	char	   *sql;
	uint64		n;
	int			i;

	/*
	 * Deletions first: the second statement then passes over the rows just
	 * deleted (invisible to it) without testing them again, which in a
	 * table where everything due is fully due halves the tests.
	 */
	static const int states[] = {ROW_DELETE, ROW_ANONYMIZE};

	/* a hold being placed on this table finishes first; then it counts */
	hold_lock_shared(l);
	if (!l->has_holds && retention_table_has_holds(l->root, l->run->cutoff, true))
	{
		l->has_holds = true;
		l->status_expr = MemoryContextStrdup(l->cxt,
											 psprintf("retention._sweep_row(%s)",
													  sweep_row_args(l->leaf, true, NULL)));
	}
	set_lock_timeout();
	/*
	 * A batch's commit need not wait for its WAL to reach disk: after a
	 * crash, a lost batch is only swept again (its log row goes with it).
	 */
	run_sql("SELECT pg_catalog.set_config('synchronous_commit', 'off', true)",
			0, NULL, NULL, SPI_OK_SELECT);
	/*
	 * The rules run in the expiry triggers: a session in replica mode too.
	 * Set from C: the batch runs as the table's owner, who may not.
	 */
	(void) set_config_option("session_replication_role", "origin", PGC_SUSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	retention_fixup_relid = l->leaf;
	/* no hold can appear before this batch commits: the trigger need not look */
	retention_sweep_unheld_relid = l->has_holds ? InvalidOid : l->leaf;

	for (i = 0; i < lengthof(states); i++)
	{
		int			state = states[i];
		bool		returning = l->recheck && state == ROW_ANONYMIZE;
		int			expected = state == ROW_DELETE ? SPI_OK_DELETE :
			returning ? SPI_OK_UPDATE_RETURNING : SPI_OK_UPDATE;

		if (state == ROW_DELETE && l->keep_anonymized)
			continue;
		pace_active = retention_max_wal_rate > 0;
		if (!l->skip_locked)
		{
			sql = psprintf(state == ROW_DELETE ?
						   "DELETE FROM %s x WHERE %s" :
						   "UPDATE %s x SET %s = x.%s WHERE %s%s",
						   l->qualified,
						   state == ROW_DELETE ? batch_where(l, state) : l->ended_at,
						   l->ended_at, batch_where(l, state),
						   returning ? " RETURNING x.ctid" : "");
			n = run_sql(sql, 2, types, values, expected);
		}
		else
		{
			uint64		candidates;
			bool		isnull;

			sql = psprintf("SELECT count(*) FROM %s x WHERE %s", l->qualified, batch_where(l, state));
			run_sql(sql, 2, types, values, SPI_OK_SELECT);
			candidates = DatumGetInt64(first_value(&isnull));
			if (state == ROW_DELETE)
				sql = psprintf("DELETE FROM %s y USING (SELECT x.ctid FROM %s x WHERE %s "
							   "FOR UPDATE OF x SKIP LOCKED) s WHERE y.ctid = s.ctid",
							   l->qualified, l->qualified, batch_where(l, state));
			else
				sql = psprintf("UPDATE %s y SET %s = y.%s FROM (SELECT x.ctid FROM %s x WHERE %s "
							   "FOR UPDATE OF x SKIP LOCKED) s WHERE y.ctid = s.ctid%s",
							   l->qualified, l->ended_at, l->ended_at, l->qualified,
							   batch_where(l, state), returning ? " RETURNING y.ctid" : "");
			n = run_sql(sql, 2, types, values, expected);
			c->skipped += (int64) (candidates - Min(candidates, n));
		}
		pace_active = false;
		if (returning)
			updated = returned_tids();
		if (state == ROW_DELETE)
			c->deleted += n;
		else
			c->anonymized += n;
	}
	retention_sweep_unheld_relid = InvalidOid;

	/*
	 * A trigger of the table's own that fires before the row is changed can
	 * keep it (a BEFORE DELETE returning NULL is not counted, but a BEFORE
	 * UPDATE setting NEW to OLD is): where there is one, what is still due
	 * in the batch's range was not done, whatever the counts above say.
	 */
	if (l->recheck)
	{
		bool		isnull;
		int64		in_range;
		int64		unchanged = 0;
		int64		moved_out = 0;
		const char *range = psprintf("x.ctid >= '(%u,0)'::tid AND x.ctid < '(%u,0)'::tid",
									 l->from, l->to);

		sql = psprintf("SELECT count(*) FROM %s x WHERE %s AND x.%s <= $1 AND %s IN (%d, %d)",
					   l->qualified, range, l->ended_at, l->status_expr, ROW_ANONYMIZE, ROW_DELETE);
		run_sql(sql, 2, types, values, SPI_OK_SELECT);
		in_range = DatumGetInt64(first_value(&isnull));
		/* rows locked by others were counted as skipped, not kept */
		in_range -= Min(in_range, c->skipped - skipped_before);
		if (updated != (Datum) 0)
		{
			/* rows an UPDATE wrote back as they were (maybe to another block) */
			sql = psprintf("SELECT count(*), count(*) FILTER (WHERE NOT (%s)) FROM %s x "
						   "WHERE x.ctid = ANY ($3) AND %s IN (%d, %d)",
						   range, l->qualified, l->status_expr, ROW_ANONYMIZE, ROW_DELETE);
			run_sql(sql, 3, (Oid[]) {l->maxcut_type, TIMESTAMPTZOID, TIDARRAYOID},
					(Datum[]) {l->maxcut, TimestampTzGetDatum(l->run->cutoff), updated},
					SPI_OK_SELECT);
			unchanged = DatumGetInt64(first_value(&isnull));
			moved_out = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 2, &isnull));
		}
		c->anonymized -= Min(unchanged, c->anonymized - anonymized_before);
		c->kept += in_range + moved_out;
	}

	if (l->has_holds)
	{
		bool		isnull;

		sql = psprintf("SELECT count(*) FROM %s x WHERE %s", l->qualified, batch_where(l, ROW_HELD));
		run_sql(sql, 2, types, values, SPI_OK_SELECT);
		c->held += DatumGetInt64(first_value(&isnull));
	}
}

/* -------------------------------------------------------------------------
 * The fast path: a partition whose bound proves all of it due
 * -------------------------------------------------------------------------
 */

/* does leaf's partition constraint prove "ended_at <= maxcut" for every row? */
static bool
partition_fully_due(SweepLeaf *l, Relation rel)
{
	List	   *partqual = RelationGetPartitionQual(rel);
	TypeCacheEntry *tc;
	Oid			le_op;
	Expr	   *clause;
	RetentionTable *t = l->t;
	int			i;

	if (partqual == NIL || t->keep_anonymized || expiry_has_consents(t))
		return false;
	/* a billing anchor or a column kept for no purpose is not in the bound */
	for (i = 0; i < t->ncolumns; i++)
		if ((t->columns[i].purposes & PURPOSE_BIT(RETENTION_BILLING)) &&
			t->anchor != InvalidAttrNumber)
			return false;

	tc = lookup_type_cache(t->ended_at_type, TYPECACHE_BTREE_OPFAMILY);
	le_op = get_opfamily_member(tc->btree_opf, t->ended_at_type, t->ended_at_type,
								BTLessEqualStrategyNumber);
	if (!OidIsValid(le_op))
		return false;
	{
		RetentionCutoffs cut;
		TimestampTz all_due = DT_NOEND;
		int			p;

		/* fully due: ended_at at or before every purpose's cutoff */
		retention_cutoffs(l->run->cutoff, &cut);
		for (i = 0; i < t->ncolumns; i++)
			for (p = 0; p < RETENTION_NUM_PURPOSES; p++)
				if (t->columns[i].purposes & PURPOSE_BIT(p))
					all_due = Min(all_due, cut.cutoff[p]);
		if (all_due == DT_NOEND)
			all_due = cut.now;
		if (t->ended_at_type == TIMESTAMPOID)
			all_due -= (TimestampTz) 15 * USECS_PER_HOUR;	/* any zone */
		clause = make_opclause(le_op, BOOLOID, false,
							   (Expr *) makeVar(1, t->ended_at, t->ended_at_type, -1, InvalidOid, 0),
							   (Expr *) makeConst(t->ended_at_type, -1, InvalidOid, sizeof(int64),
												  TimestampTzGetDatum(all_due), false, FLOAT8PASSBYVAL),
							   InvalidOid, InvalidOid);
	}
	return predicate_implied_by(list_make1(clause), partqual, false);
}

typedef struct FastPath
{
	SweepLeaf  *l;
	bool		truncated;
	int64		rows;
} FastPath;

static void
fast_path_step(void *arg)
{
	FastPath   *fp = (FastPath *) arg;
	SweepLeaf  *l = fp->l;
	bool		isnull;

	hold_lock_shared(l);
	set_lock_timeout();
	run_sql(psprintf("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", l->qualified), 0, NULL, NULL,
			SPI_OK_UTILITY);
	/* nothing held in it (holds are placed by subscriber and time range) */
	if (!l->has_holds && retention_table_has_holds(l->root, l->run->cutoff, true))
	{
		l->has_holds = true;
		l->status_expr = MemoryContextStrdup(l->cxt,
											 psprintf("retention._sweep_row(%s)",
													  sweep_row_args(l->leaf, true, NULL)));
	}
	if (l->has_holds)
	{
		run_sql(psprintf("SELECT EXISTS (SELECT 1 FROM %s x WHERE %s = %d)",
						 l->qualified, l->status_expr, ROW_HELD),
				2, (Oid[]) {l->maxcut_type, TIMESTAMPTZOID},
				(Datum[]) {l->maxcut, TimestampTzGetDatum(l->run->cutoff)}, SPI_OK_SELECT);
		if (DatumGetBool(first_value(&isnull)))
			return;
	}
	/* the rows it removes, from the statistics: counting them would read it all */
	run_sql(psprintf("SELECT greatest(c.reltuples, 0)::bigint FROM pg_catalog.pg_class c WHERE c.oid = %u",
					 l->leaf), 0, NULL, NULL, SPI_OK_SELECT);
	fp->rows = DatumGetInt64(first_value(&isnull));
	run_sql(psprintf("TRUNCATE %s", l->qualified), 0, NULL, NULL, SPI_OK_UTILITY);
	fp->truncated = true;
}

/* -------------------------------------------------------------------------
 * A leaf relation
 * -------------------------------------------------------------------------
 */

typedef struct Progress
{
	int64		log_id;
	const char *phase;
	SweepCounts *counts;
} Progress;

static void
progress_step(void *arg)
{
	Progress   *pr = (Progress *) arg;
	SweepCounts *c = pr->counts;

	run_sql("UPDATE retention.sweep_log SET phase = $2, rows_scanned = $3, rows_anonymized = $4, "
			"rows_deleted = $5, rows_held = $6, rows_skipped = $7, partitions_truncated = $8, "
			"paused = $9 * interval '1 microsecond' WHERE id = $1",
			9, (Oid[]) {INT8OID, TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT4OID, INT8OID},
			(Datum[]) {Int64GetDatum(pr->log_id), CStringGetTextDatum(pr->phase),
				Int64GetDatum(c->scanned), Int64GetDatum(c->anonymized),
				Int64GetDatum(c->deleted), Int64GetDatum(c->held),
				Int64GetDatum(c->skipped), Int32GetDatum(c->truncated),
			Int64GetDatum(c->paused_us)},
			SPI_OK_UPDATE);
}

/* what the run has done so far, for retention.sweep_progress */
static void
log_progress(SweepRun *run, int64 log_id, const char *phase, SweepCounts *c)
{
	Progress	pr = {log_id, phase, c};

	run_as_owner(run, progress_step, &pr);
}

/* what a sweep of the leaf would do, counted; it changes nothing */
static void
dry_run_step(void *arg)
{
	SweepLeaf  *l = (SweepLeaf *) arg;
	bool		isnull;
	int64		would[4];
	int			s;

	for (s = ROW_ANONYMIZE; s <= ROW_HELD; s++)
	{
		run_sql(psprintf("SELECT count(*) FROM %s x WHERE x.%s <= $1 AND %s = %d",
						 l->qualified, l->ended_at, l->status_expr, s),
				2, (Oid[]) {l->maxcut_type, TIMESTAMPTZOID},
				(Datum[]) {l->maxcut, TimestampTzGetDatum(l->run->cutoff)}, SPI_OK_SELECT);
		would[s] = DatumGetInt64(first_value(&isnull));
	}
	l->counts->anonymized += would[ROW_ANONYMIZE];
	l->counts->deleted += would[ROW_DELETE];
	l->counts->held += would[ROW_HELD];
}

/* an error of the sweep's own, for a table's sweep_log row */
static ErrorData *
sweep_failure(int sqlerrcode, const char *message, const char *detail)
{
	ErrorData  *e = palloc0(sizeof(ErrorData));

	e->elevel = ERROR;
	e->sqlerrcode = sqlerrcode;
	e->message = pstrdup(message);
	e->detail = detail ? pstrdup(detail) : NULL;
	/* its detail quotes no row: shown as is (error_detail()) */
	e->funcname = "sweep_failure";
	return e;
}

/*
 * The detail to show of an error a sweep caught: its own failures' detail,
 * which it wrote; for any other error SWEEP_ERROR_DETAIL instead.
 */
static const char *
error_detail(const ErrorData *edata)
{
	if (edata->funcname != NULL && strcmp(edata->funcname, "sweep_failure") == 0 &&
		edata->detail != NULL)
		return edata->detail;
	return SWEEP_ERROR_DETAIL;
}

/*
 * The row triggers of rel that fire on the sweep's statements (which run
 * with session_replication_role origin): is retention's BEFORE UPDATE
 * trigger among them (it does the anonymizing), and is there another one
 * firing before an UPDATE or a DELETE, which could keep a row as it was?
 */
static void
leaf_triggers(Relation rel, bool *ours, bool *foreign)
{
	TriggerDesc *td = rel->trigdesc;
	Oid			nsp = retention_schema_oid(false);
	int			i;

	*ours = false;
	*foreign = false;
	if (td == NULL)
		return;
	for (i = 0; i < td->numtriggers; i++)
	{
		Trigger    *tg = &td->triggers[i];
		char	   *fname;

		if (!TRIGGER_FOR_ROW(tg->tgtype) || !TRIGGER_FOR_BEFORE(tg->tgtype) ||
			!(TRIGGER_FOR_UPDATE(tg->tgtype) || TRIGGER_FOR_DELETE(tg->tgtype)) ||
			tg->tgenabled == TRIGGER_DISABLED || tg->tgenabled == TRIGGER_FIRES_ON_REPLICA)
			continue;
		fname = get_func_name(tg->tgfoid);
		if (get_func_namespace(tg->tgfoid) == nsp && fname != NULL &&
			strcmp(fname, "_expire_before") == 0)
		{
			*ours = *ours || TRIGGER_FOR_UPDATE(tg->tgtype);
			continue;
		}
		*foreign = true;
	}
}

/* returns NULL, or the error that stopped this leaf */
static ErrorData *
sweep_leaf(SweepRun *run, Oid root, Oid leaf, bool has_holds, int64 log_id,
		   SweepCounts *counts)
{
	SweepLeaf	l;
	Relation	rel;
	BlockNumber nblocks;
	double		per_block;
	BlockNumber step;
	RetentionCutoffs cut;
	ErrorData  *edata;
	bool		is_partition;
	MemoryContext batch_cxt;

	memset(&l, 0, sizeof(l));
	l.cxt = CurrentMemoryContext;
	l.run = run;
	l.root = root;
	l.leaf = leaf;
	l.has_holds = has_holds;
	l.counts = counts;
	l.t = retention_table(leaf);
	l.keep_anonymized = l.t->keep_anonymized;
	if (l.t->ended_at == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("protected table \"%s\" has no usable ended_at column", get_rel_name(leaf))));
	if (l.t->ncolumns == 0)
		return NULL;
	retention_cutoffs(run->cutoff, &cut);
	l.maxcut = TimestampTzGetDatum(retention_table_maxcut(l.t, &cut));
	l.maxcut_type = l.t->ended_at_type;
	l.qualified = psprintf("ONLY %s", qualified_name(leaf));
	l.status_expr = psprintf("retention._sweep_row(%s)",
							 sweep_row_args(leaf, has_holds, &l.ended_at));

	rel = relation_open(leaf, AccessShareLock);
	nblocks = RelationGetNumberOfBlocks(rel);
	per_block = rows_per_block(rel);
	is_partition = rel->rd_rel->relispartition;
	l.leaf_owner = rel->rd_rel->relowner;
	/* relhasrules may stay set after DROP RULE: the relcache's rules tell */
	if (rel->rd_rules != NULL && rel->rd_rules->numLocks > 0)
	{
		relation_close(rel, NoLock);
		return sweep_failure(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
							 psprintf("protected table \"%s\" has rules", get_rel_name(leaf)),
							 "A rule rewrites the sweep's statements: what they did could not be counted.");
	}
	{
		bool		ours;

		leaf_triggers(rel, &ours, &l.recheck);
		if (!ours)
		{
			relation_close(rel, NoLock);
			return sweep_failure(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
								 psprintf("the expiry trigger of protected table \"%s\" is missing or disabled",
										  get_rel_name(leaf)),
								 "The sweep anonymizes through it: nothing could be done.  See retention.report().");
		}
	}

	if (run->dry_run)
	{
		relation_close(rel, NoLock);
		/* with the rights of the real sweep: the caller may not read the table */
		return retention_run_restricted(l.leaf_owner, dry_run_step, &l);
	}

	if (is_partition && partition_fully_due(&l, rel))
	{
		FastPath	fp = {&l, false, 0};

		relation_close(rel, NoLock);
		edata = retention_run_restricted(l.leaf_owner, fast_path_step, &fp);
		if (edata == NULL && fp.truncated)
		{
			counts->deleted += fp.rows;
			counts->scanned += fp.rows;
			counts->truncated++;
			log_progress(run, log_id, "fast path", counts);
			sweep_commit(run);
			return NULL;
		}
		if (edata != NULL && edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
			return edata;
		/* locked, or something held in it: row by row */
		rel = relation_open(leaf, AccessShareLock);
	}
	relation_close(rel, NoLock);

	/* whatever a batch allocates goes with it: memory stays flat */
	batch_cxt = AllocSetContextCreate(l.cxt, "retention sweep batch", ALLOCSET_DEFAULT_SIZES);
	step = (BlockNumber) Max(1.0, run->batch_size / Max(per_block, 1.0));
	for (l.from = 0; l.from < nblocks; l.from = l.to)
	{
		MemoryContext oldcxt;

		l.to = Min(nblocks, l.from + step);
		l.skip_locked = false;
		MemoryContextReset(batch_cxt);
		oldcxt = MemoryContextSwitchTo(batch_cxt);
		edata = retention_run_restricted(l.leaf_owner, batch_step, &l);
		if (edata != NULL && edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
		{
			/* someone holds a row: take what is free, the rest next time */
			l.skip_locked = true;
			edata = retention_run_restricted(l.leaf_owner, batch_step, &l);
		}
		pace_active = false;
		counts->paused_us += pace_paused_us;
		pace_paused_us = 0;
		MemoryContextSwitchTo(oldcxt);
		if (edata != NULL)
			return edata;		/* allocated in batch_cxt, which stays until the run ends */
		counts->scanned += (int64) ((l.to - l.from) * per_block);
		oldcxt = MemoryContextSwitchTo(batch_cxt);
		log_progress(run, log_id, "sweeping", counts);
		MemoryContextSwitchTo(oldcxt);
		sweep_commit(run);
		if (retention_batch_delay > 0 && l.to < nblocks)
			counts->paused_us += sweep_pause(retention_batch_delay);
		CHECK_FOR_INTERRUPTS();

		/*
		 * A batch need not wait on a latch, so nothing else notices that
		 * the postmaster is gone: a sweep that went on would keep the old
		 * server's shared memory in use and its restart refused.
		 */
		if (!PostmasterIsAlive())
			ereport(FATAL,
					(errcode(ERRCODE_ADMIN_SHUTDOWN),
					 errmsg("terminating sweep due to unexpected postmaster exit")));
	}
	return NULL;
}

/* -------------------------------------------------------------------------
 * A protected table
 * -------------------------------------------------------------------------
 */

/*
 * The session lock that keeps two sweeps off one table.  In a database
 * still at 1.0, also 1.0's advisory lock, which 1.0's sweep_progress reads.
 */
static LOCKTAG
legacy_locktag(RetentionLockKind kind, Oid relid)
{
	LOCKTAG		tag;
	int64		key = retention_legacy_lock_key(kind, relid);

	/* as pg_advisory_lock(bigint) */
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (key >> 32), (uint32) key, 1);
	return tag;
}

static bool
lock_table(SweepRun *run, Oid relid)
{
	LOCKTAG		tag;

	if (!retention_lock_acquire(RETENTION_LOCK_SWEEP, relid, ExclusiveLock, true, true))
		return false;
	if (run->legacy_locks)
	{
		tag = legacy_locktag(RETENTION_LOCK_SWEEP, relid);
		if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		{
			retention_lock_release(RETENTION_LOCK_SWEEP, relid, ExclusiveLock, true);
			return false;
		}
	}
	return true;
}

static void
unlock_table(SweepRun *run, Oid relid)
{
	LOCKTAG		tag;

	retention_lock_release(RETENTION_LOCK_SWEEP, relid, ExclusiveLock, true);
	if (run->legacy_locks)
	{
		tag = legacy_locktag(RETENTION_LOCK_SWEEP, relid);
		LockRelease(&tag, ExclusiveLock, true);
	}
}

/* wait for a hold being placed on the leaf's table; keep new ones out */
static void
hold_lock_shared(SweepLeaf *l)
{
	LOCKTAG		tag;

	(void) retention_lock_acquire(RETENTION_LOCK_HOLD, l->root, ShareLock, false, false);
	if (l->run->legacy_locks)
	{
		tag = legacy_locktag(RETENTION_LOCK_HOLD, l->root);
		(void) LockAcquire(&tag, ShareLock, false, false);
	}
}

static int64
insert_log(SweepRun *run, Oid relid, const char *status, const char *error, int64 estimate)
{
	bool		isnull;

	run_sql_nulls("INSERT INTO retention.sweep_log (run_id, relid, started_at, cutoff, status, phase, "
			"rows_estimate, run_by, error, finished_at) "
			"SELECT $1, $2, clock_timestamp(), $3, $4, 'starting', $7, $5, $6, "
			"CASE WHEN $4 <> 'running' THEN clock_timestamp() END RETURNING id",
			7, (Oid[]) {INT8OID, OIDOID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID, INT8OID},
			(Datum[]) {Int64GetDatum(run->run_id), ObjectIdGetDatum(relid),
				TimestampTzGetDatum(run->cutoff), CStringGetTextDatum(status),
				CStringGetTextDatum(run->run_by),
				error ? CStringGetTextDatum(error) : (Datum) 0,
			Int64GetDatum(estimate)},
			error ? "       " : "     n ",
			SPI_OK_INSERT_RETURNING);
	return DatumGetInt64(first_value(&isnull));
}

typedef struct TableStart
{
	SweepRun   *run;
	Oid			relid;
	int64		log_id;
	bool		has_holds;
	List	   *leaves;
} TableStart;

/* the rows a sweep of the leaves will read, as progress counts them */
static int64
estimate_rows(List *leaves)
{
	ListCell   *lc;
	double		rows = 0;

	foreach(lc, leaves)
	{
		Relation	rel = relation_open(lfirst_oid(lc), AccessShareLock);

		rows += RelationGetNumberOfBlocks(rel) * rows_per_block(rel);
		relation_close(rel, NoLock);
	}
	return (int64) rows;
}

static void
table_start_step(void *arg)
{
	TableStart *ts = (TableStart *) arg;

	/* an earlier run that left its row 'running' did not finish */
	run_sql("UPDATE retention.sweep_log SET status = 'interrupted', "
			"error = 'the run ended before this table was done (server stop, crash or cancel)' "
			"WHERE relid = $1 AND status = 'running'",
			1, (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(ts->relid)}, SPI_OK_UPDATE);
	/* the relations that hold rows: the table, or its leaf partitions */
	if (get_rel_relkind(ts->relid) == RELKIND_PARTITIONED_TABLE)
	{
		ListCell   *lc;

		foreach(lc, find_all_inheritors(ts->relid, AccessShareLock, NULL))
			if (get_rel_relkind(lfirst_oid(lc)) == RELKIND_RELATION)
				ts->leaves = lappend_oid(ts->leaves, lfirst_oid(lc));
	}
	else
		ts->leaves = list_make1_oid(ts->relid);
	if (!ts->run->dry_run)
		ts->log_id = insert_log(ts->run, ts->relid, "running", NULL,
								estimate_rows(ts->leaves));

	ts->has_holds = retention_table_has_holds(ts->relid, ts->run->cutoff, true);
}

typedef struct TableFinish
{
	SweepRun   *run;
	Oid			relid;
	int64		log_id;
	SweepCounts *counts;
	ErrorData  *edata;
} TableFinish;

/* the table's sweep_log row, final, and its audit row */
static void
table_finish_step(void *arg)
{
	TableFinish *tf = (TableFinish *) arg;
	SweepCounts *c = tf->counts;
	const char *status = tf->edata ? "failed" : "done";

	run_sql_nulls("UPDATE retention.sweep_log SET status = $2, phase = NULL, "
				  "finished_at = clock_timestamp(), rows_anonymized = $3, rows_deleted = $4, "
				  "rows_held = $5, rows_skipped = $6, partitions_truncated = $7, "
				  "rows_scanned = greatest(rows_scanned, $8), error = $9, "
				  "paused = $10 * interval '1 microsecond' WHERE id = $1",
				  10, (Oid[]) {INT8OID, TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID, INT4OID, INT8OID, TEXTOID, INT8OID},
				  (Datum[]) {Int64GetDatum(tf->log_id), CStringGetTextDatum(status),
					  Int64GetDatum(c->anonymized), Int64GetDatum(c->deleted),
					  Int64GetDatum(c->held), Int64GetDatum(c->skipped),
					  Int32GetDatum(c->truncated), Int64GetDatum(c->scanned),
					  tf->edata ? CStringGetTextDatum(tf->edata->message) : (Datum) 0,
				  Int64GetDatum(c->paused_us)},
				  tf->edata ? "          " : "        n ",
				  SPI_OK_UPDATE);
	run_sql("SELECT retention._audit('sweep', $1, "
			"jsonb_build_object('run', $2, 'cutoff', $3, 'anonymized', $4, 'deleted', $5, "
			"'held', $6, 'skipped', $7, 'status', $8))",
			8, (Oid[]) {TEXTOID, INT8OID, TIMESTAMPTZOID, INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID},
			(Datum[]) {CStringGetTextDatum(qualified_name(tf->relid)), Int64GetDatum(tf->run->run_id),
				TimestampTzGetDatum(tf->run->cutoff), Int64GetDatum(c->anonymized),
				Int64GetDatum(c->deleted), Int64GetDatum(c->held),
			Int64GetDatum(c->skipped), CStringGetTextDatum(status)},
			SPI_OK_SELECT);
}

static void
skipped_step(void *arg)
{
	TableStart *ts = (TableStart *) arg;

	insert_log(ts->run, ts->relid, "skipped", "another sweep was running on this table", 0);
}

static void
sweep_table(SweepRun *run, Oid relid)
{
	TableStart	ts;
	SweepCounts counts;
	ErrorData  *edata = NULL;
	ListCell   *lc;
	TimestampTz start = GetCurrentTimestamp();
	MemoryContext cxt = CurrentMemoryContext;
	long		secs;
	int			usecs;
	char	   *citus;

	memset(&ts, 0, sizeof(ts));
	memset(&counts, 0, sizeof(counts));
	ts.run = run;
	ts.relid = relid;

	if (!lock_table(run, relid))
	{
		ereport(NOTICE,
				(errmsg("skipping table \"%s\": another sweep is running on it", get_rel_name(relid))));
		if (!run->dry_run)
		{
			run_as_owner(run, skipped_step, &ts);
			sweep_commit(run);
		}
		return;
	}

	PG_TRY();
	{
		edata = retention_run_as(run->owner, table_start_step, &ts);
		sweep_commit(run);
		/* a Citus table: its rows are in shards, out of reach (citus.c) */
		if (edata == NULL && (citus = retention_citus_table_problem(relid)) != NULL)
			edata = sweep_failure(ERRCODE_FEATURE_NOT_SUPPORTED, citus,
								  "Nothing was swept.  See retention.report() and docs/citus.md.");
		if (edata == NULL)
		{
			foreach(lc, ts.leaves)
			{
				edata = sweep_leaf(run, relid, lfirst_oid(lc), ts.has_holds, ts.log_id, &counts);
				if (edata != NULL)
					break;
			}
		}
		/* what was due and is still there was not done: a failure */
		if (edata == NULL && counts.kept > 0)
			edata = sweep_failure(ERRCODE_TRIGGERED_DATA_CHANGE_VIOLATION,
								  psprintf(INT64_FORMAT " rows due were kept as they were by triggers of the table",
										   counts.kept),
								  "A trigger of the table's own undid or skipped the sweep's change: those rows are still overdue.");
		MemoryContextSwitchTo(cxt);
		TimestampDifference(start, GetCurrentTimestamp(), &secs, &usecs);

		if (run->dry_run && edata)
			ereport(WARNING,
					(errcode(edata->sqlerrcode),
					 errmsg("dry run on table \"%s\" failed: %s", get_rel_name(relid), edata->message),
					 errdetail("%s", error_detail(edata))));
		else if (run->dry_run)
			ereport(NOTICE,
					(errmsg("dry run on \"%s\": would anonymize " INT64_FORMAT " rows and delete " INT64_FORMAT
							", " INT64_FORMAT " held back",
							get_rel_name(relid), counts.anonymized, counts.deleted, counts.held)));
		else
		{
			TableFinish tf = {run, relid, ts.log_id, &counts, edata};

			run_as_owner(run, table_finish_step, &tf);
			if (edata)
			{
				/* the error of the one table, reported; the others still run */
				ereport(WARNING,
						(errcode(edata->sqlerrcode),
						 errmsg("sweep of table \"%s\" failed: %s", get_rel_name(relid), edata->message),
						 errdetail("%s", error_detail(edata)),
						 errhint("The error is in retention.sweep_log; the other tables were swept.")));
			}
			else
				ereport(NOTICE,
						(errmsg("swept \"%s\": " INT64_FORMAT " rows anonymized, " INT64_FORMAT " deleted, "
								INT64_FORMAT " held back, " INT64_FORMAT " skipped (locked) in %s",
								get_rel_name(relid), counts.anonymized, counts.deleted, counts.held,
								counts.skipped,
								secs < 1 ? "less than a second" :
								psprintf("%ld.%01d s", secs, usecs / 100000))));
		}
		sweep_commit(run);
	}
	PG_FINALLY();
	{
		/* also when cancelled: a session lock would outlive the error */
		unlock_table(run, relid);
	}
	PG_END_TRY();
}

/* -------------------------------------------------------------------------
 * The procedure and the row test
 * -------------------------------------------------------------------------
 */

typedef struct RunStart
{
	SweepRun   *run;
	Oid			relid;			/* the table asked for, or InvalidOid for all */
	List	   *tables;
} RunStart;

/* the run's id, who runs it, the tables to sweep; prune the old log */
static void
run_start_step(void *arg)
{
	RunStart   *rs = (RunStart *) arg;
	SweepRun   *run = rs->run;
	bool		isnull;
	uint64		i;

	/* who sweeps: the role in effect (SET ROLE's; the worker's retention_sweeper) */
	run_sql("SELECT pg_catalog.nextval('retention.sweep_run_seq'), "
			"$1 || coalesce(' (' || nullif(pg_catalog.current_setting('application_name'), '') || ')', '')",
			1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(GetUserNameFromId(GetOuterUserId(), false))},
			SPI_OK_SELECT);
	run->run_id = DatumGetInt64(first_value(&isnull));
	run->run_by = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

	/* a database not yet updated from 1.0 locks as 1.0 does, too */
	run_sql("SELECT e.extversion = '1.0' FROM pg_catalog.pg_extension e WHERE e.extname = 'retention'",
			0, NULL, NULL, SPI_OK_SELECT);
	run->legacy_locks = SPI_processed > 0 && DatumGetBool(first_value(&isnull));

	run_sql("SELECT relid::oid FROM retention.protected_table "
			"WHERE $1 = 0 OR relid::oid = $1 ORDER BY relid::oid",
			1, (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(rs->relid)}, SPI_OK_SELECT);
	if (OidIsValid(rs->relid) && SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("table \"%s\" is not protected", get_rel_name(rs->relid)),
				 errhint("Protect it first with retention.protect().")));
	for (i = 0; i < SPI_processed; i++)
		rs->tables = lappend_oid(rs->tables,
								 DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																SPI_tuptable->tupdesc, 1, &isnull)));

	if (!run->dry_run)
		run_sql(psprintf("DELETE FROM retention.sweep_log WHERE started_at < now() - interval '%d months'",
						 retention_log_keep), 0, NULL, NULL, SPI_OK_DELETE);
}

/*
 * CALL retention.sweep(tbl regclass DEFAULT NULL, batch_size int DEFAULT NULL,
 *						dry_run bool DEFAULT false)
 */
Datum
retention_sweep(PG_FUNCTION_ARGS)
{
	SweepRun	run;
	RunStart	start;
	List	   *volatile tables = NIL;
	ListCell   *lc;
	TimestampTz save_now = retention_sweep_now;
	bool		save_quiet = retention_expiry_quiet;

	memset(&run, 0, sizeof(run));
	run.nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	run.batch_size = PG_ARGISNULL(1) ? retention_batch_size : PG_GETARG_INT32(1);
	run.dry_run = PG_ARGISNULL(2) ? false : PG_GETARG_BOOL(2);
	if (run.batch_size < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be at least 1")));

	/* the cutoff: what is due now is what this run removes, whatever its length */
	run.cutoff = GetCurrentTimestamp();
	run.owner = retention_extension_owner();
	if (!run.nonatomic)
		ereport(NOTICE,
				(errmsg("sweeping in a single transaction"),
				 errdetail("CALL retention.sweep() inside a transaction block or a function cannot commit batch by batch.")));

	SPI_connect_ext(run.nonatomic ? SPI_OPT_NONATOMIC : 0);
	memset(&start, 0, sizeof(start));
	start.run = &run;
	start.relid = PG_ARGISNULL(0) ? InvalidOid : PG_GETARG_OID(0);
	run_as_owner(&run, run_start_step, &start);
	tables = start.tables;
	sweep_commit(&run);

	retention_sweep_now = run.cutoff;
	retention_expiry_quiet = true;
	pace_reset();
	PG_TRY();
	{
		foreach(lc, tables)
		{
			Oid			relid = lfirst_oid(lc);

			/* a table dropped since the list was read is simply gone */
			if (get_rel_name(relid) == NULL)
				continue;
			sweep_table(&run, relid);
		}
	}
	PG_FINALLY();
	{
		retention_sweep_now = save_now;
		retention_expiry_quiet = save_quiet;
		retention_fixup_relid = InvalidOid;
		retention_sweep_unheld_relid = InvalidOid;
		pace_active = false;
		pace_paused_us = 0;
	}
	PG_END_TRY();

	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * retention._sweep_row(tableoid, ended_at, billing_anchor, consent, hold,
 *						VARIADIC tagged columns): what the sweep does with
 * the row, as of the run's cutoff (see the ROW_* codes).  The tagged
 * columns come in the order of the relation's RetentionTable.
 */
Datum
retention_sweep_row(PG_FUNCTION_ARGS)
{
	RetentionTable *t;
	RetentionCutoffs cut;
	RetentionRow row;
	Oid		   *types;
	Datum	   *values;
	bool	   *isnull;
	uint64		due;
	bool		fully_due;
	int			i;
	int			natts;

	/* a batch's rows are where its WAL comes from: pace them here */
	if (pace_active)
		sweep_delay_point();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_INT32(ROW_NOTHING);
	t = retention_table(PG_GETARG_OID(0));
	if (!OidIsValid(t->protected_relid) || PG_NARGS() - 5 != expiry_row_nargs(t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("retention._sweep_row() was given %d values for a table with %d",
						PG_NARGS() - 5, expiry_row_nargs(t)),
				 errhint("Run the sweep again: the table changed while it ran.")));

	types = (Oid *) fcinfo->flinfo->fn_extra;
	if (types == NULL)
	{
		types = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(Oid) * 3);
		types[1] = get_fn_expr_argtype(fcinfo->flinfo, 1);
		types[2] = get_fn_expr_argtype(fcinfo->flinfo, 2);
		fcinfo->flinfo->fn_extra = types;
	}

	memset(&row, 0, sizeof(row));
	row.originated = (t->originated == InvalidAttrNumber ||
					  (!PG_ARGISNULL(5 + t->ncolumns) && PG_GETARG_BOOL(5 + t->ncolumns)));
	row.ended_at = (types[1] == TIMESTAMPOID) ?
		retention_timestamp_to_tz(PG_GETARG_TIMESTAMP(1)) : PG_GETARG_TIMESTAMPTZ(1);
	if (!PG_ARGISNULL(2))
	{
		row.billing_anchor = (types[2] == TIMESTAMPOID) ?
			retention_timestamp_to_tz(PG_GETARG_TIMESTAMP(2)) : PG_GETARG_TIMESTAMPTZ(2);
		row.has_anchor = true;
	}

	/* the tagged values, laid out by attribute number for expiry.c */
	natts = 0;
	for (i = 0; i < t->ncolumns; i++)
		natts = Max(natts, t->columns[i].attnum);
	values = palloc0(sizeof(Datum) * natts);
	isnull = palloc(sizeof(bool) * natts);
	memset(isnull, true, sizeof(bool) * natts);
	for (i = 0; i < t->ncolumns; i++)
	{
		AttrNumber	a = t->columns[i].attnum;

		isnull[a - 1] = PG_ARGISNULL(5 + i);
		if (!isnull[a - 1])
			values[a - 1] = PG_GETARG_DATUM(5 + i);
	}

	/* a sweep batch asks for the consent (NULL) and the hold (-1) to be looked up */
	if (PG_ARGISNULL(3))
		expiry_lookup_row(t, values, isnull, &row, false, expiry_has_consents(t));
	else
		row.consent = PG_GETARG_BOOL(3);

	retention_cutoffs(retention_sweep_now != 0 ? retention_sweep_now :
					  GetCurrentStatementStartTimestamp(), &cut);
	due = expiry_due_columns(t, &cut, &row, &fully_due);
	if (due == 0)
		PG_RETURN_INT32(ROW_NOTHING);

	/* held: what would the hold keep? */
	if (!PG_ARGISNULL(4) && PG_GETARG_INT32(4) < 0)
		expiry_lookup_row(t, values, isnull, &row, true, false);
	else if (!PG_ARGISNULL(4))
		row.hold = PG_GETARG_INT32(4) == 1 ? HOLD_BILLING : HOLD_ALL;
	if (row.hold != HOLD_NONE)
	{
		uint64		held_due;
		bool		held_fully;

		held_due = expiry_due_columns(t, &cut, &row, &held_fully);
		if (held_due != due || held_fully != fully_due)
		{
			/* something the hold keeps would go: work only on the rest */
			due = held_due;
			fully_due = held_fully;
			if (due == 0)
				PG_RETURN_INT32(ROW_HELD);
		}
	}

	if (fully_due && !t->keep_anonymized)
		PG_RETURN_INT32(ROW_DELETE);

	if (expiry_needs_work(t, due, fully_due, true, values, isnull, false))
		PG_RETURN_INT32(ROW_ANONYMIZE);
	/* a row kept anonymized is done once its timestamps are generalized too */
	if (fully_due && t->keep_anonymized &&
		retention_generalize_timestamp(row.ended_at) != row.ended_at)
		PG_RETURN_INT32(ROW_ANONYMIZE);
	PG_RETURN_INT32(ROW_NOTHING);
}
