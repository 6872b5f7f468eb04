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
 *	- a partition whose bound proves that it holds nothing in the ranges of
 *	  ended_at the run visits (see "What is due" below: since the leaf's
 *	  mark, what fell due by time) is skipped without being read;
 *	- otherwise its candidates are taken batch by batch: with a btree on
 *	  ended_at, the next batch_size rows by ended_at (keyset); without, its
 *	  heap in block ranges (TID range scans), only those a BRIN on ended_at
 *	  points to when there is one.  Each batch is one DELETE of the fully
 *	  due rows and one UPDATE of the rows with something to anonymize (the
 *	  BEFORE UPDATE trigger applies the rules of expiry.c as of the cutoff),
 *	  in a subtransaction, committed before the next.  Rows are locked only
 *	  for the batch; a batch that meets a row locked by someone else for
 *	  more than a moment is redone with SKIP LOCKED, and the locked rows are
 *	  counted as skipped, for the next run.  A leaf swept to the end with
 *	  nothing skipped gets its mark: the next run starts from there.
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

#include <float.h>

#include "access/relation.h"
#include "access/brin.h"
#include "access/genam.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_statistic.h"
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
#include "nodes/plannodes.h"
#include "utils/plancache.h"
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
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "access/stratnum.h"

#include "expiry.h"
#include "sweep.h"

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
	bool		marks;			/* retention.sweep_mark exists (1.1 on) */
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

/*
 * What the previous runs left of a leaf: its row of retention.sweep_mark.
 * A run that swept the leaf to the end, skipping nothing, records its
 * cutoff there; the next run need only visit the rows that fell due
 * since, unless something else made rows due (a full pass is requested,
 * the table's rules changed, a hold or consent lapsed).
 */
typedef struct SweepMark
{
	Oid			relid;
	bool		has_cutoff;
	TimestampTz swept_cutoff;
	char	   *signature;
	bool		requested;		/* a full pass was asked for */
	TimestampTz requested_at;
	bool		has_after;
	TimestampTz full_pass_after;	/* a hold or consent lapses then */
} SweepMark;

/* a range of ended_at to visit: (lo, hi], or [lo, hi] when lo_incl */
typedef struct DueRange
{
	TimestampTz lo;
	TimestampTz hi;
	bool		lo_incl;
	double		estimate;		/* its rows, from the statistics; -1: unknown */
	bool		covered;		/* the statistics saw rows written after it */
	TimestampTz *cuts;			/* where they cut it into slices of half a batch */
	int			ncuts;
} DueRange;

/* how a leaf is swept, decided before its log row is written */
typedef struct LeafPlan
{
	Oid			leaf;
	bool		skip;			/* its bound proves nothing in the ranges */
	bool		full_pass;		/* every row up to maxcut, not since the mark */
	const char *why_full;		/* why, for the log */
	DueRange   *ranges;
	int			nranges;
	bool		keyset;			/* a btree on ended_at drives the batches */
	bool		brin;			/* a BRIN on ended_at says which blocks */
	TimestampTz all_due;		/* a row that ended by then is due whole: ROW_DELETE
								 * unless held, consented or anchored */
	char	   *signature;		/* of the rules the ranges were computed by */
	SweepMark  *mark;			/* or NULL */
	double		estimate;		/* rows the sweep will examine */
	bool		last;			/* the table's last leaf */
	bool		mark_due;		/* swept to the end: its mark is written */
	bool		has_marketing;	/* with the table's log row */
} LeafPlan;

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
	LeafPlan   *plan;			/* the ranges of ended_at to visit */
	/* the batch's range of ended_at: (lo, hi], or [lo, hi] when lo_incl */
	Datum		lo;
	Datum		hi;
	bool		lo_incl;
	Datum		range_hi;		/* the end of the range being walked */
	const DueRange *range;		/* the range */
	int			next_cut;		/* its first slice's end not yet passed */
	bool		stats_cut;		/* its slices are cut by the statistics, not walked */
	bool		by_stats;		/* the batch's bound is a slice of the range */
	int64		examined;		/* rows of the batch's range (keyset batches) */
	bool		examined_known; /* counted: else the DELETE's rows (by_bound) */
	bool		by_bound;		/* the bound proves the batch's due rows fully due */
	bool		has_marketing;
	bool		has_anchor;
	bool		skip_locked;
	bool		recheck;		/* other BEFORE triggers may undo a batch */
	SweepCounts *counts;
	RetentionDecision *decision;	/* the batch's, which its triggers read */
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

/*
 * Commit what the run did so far.  Only a table's last commit (its final
 * log row and audit entry) waits for its WAL to reach disk: after a crash a
 * lost batch, mark or progress row is only done again, and the next commit
 * that waits flushes the earlier ones' WAL too.
 */
static void
sweep_commit_ext(SweepRun *run, bool durable)
{
	if (!run->nonatomic)
		return;
	if (!durable)
		(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	SPI_commit();
}

static inline void
sweep_commit(SweepRun *run)
{
	sweep_commit_ext(run, false);
}

/* set while a batch runs: its statements get generic plans */
static bool generic_plans = false;

/*
 * Set while a keyset batch runs: its statements' texts are the same from
 * one batch, and one run, to the next (only their parameters change), so
 * their plans are kept, at most BATCH_PLANS of them, keyed by text.  The
 * text names every relation schema-qualified: the plan cache replans it
 * after DDL or a rename, by the text.
 */
static bool keep_batch_plans = false;

#define BATCH_PLANS		64

static struct
{
	char	   *sql;
	SPIPlanPtr	plan;
}			batch_plans[BATCH_PLANS];
static int	batch_plans_next = 0;

static SPIPlanPtr
batch_plan(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan;
	int			i;

	for (i = 0; i < BATCH_PLANS && batch_plans[i].sql != NULL; i++)
		if (strcmp(batch_plans[i].sql, sql) == 0)
			return batch_plans[i].plan;
	plan = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare_cursor(\"%s\") failed: %s", sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	/* full: the oldest goes */
	i = batch_plans_next;
	batch_plans_next = (batch_plans_next + 1) % BATCH_PLANS;
	if (batch_plans[i].sql != NULL)
	{
		SPI_freeplan(batch_plans[i].plan);
		pfree(batch_plans[i].sql);
	}
	batch_plans[i].sql = MemoryContextStrdup(TopMemoryContext, sql);
	batch_plans[i].plan = plan;
	return plan;
}

/* run an SPI statement, returning SPI_processed; raises on failure */
static uint64
run_sql_nulls(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
			  int expected)
{
	MemoryContext cxt = CurrentMemoryContext;
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
	if (generic_plans && nargs > 0)
	{
		/*
		 * A batch's statements are planned for any parameter values: a
		 * plan for the batch's own bounds would estimate them by probing
		 * the ended_at index's first entries, which are the entries of the
		 * rows the earlier batches just deleted.
		 */
		if (keep_batch_plans)
			ret = SPI_execute_plan(batch_plan(sql, nargs, types), values, nulls, false, 0);
		else
		{
			SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_GENERIC_PLAN);

			if (plan == NULL)
				elog(ERROR, "SPI_prepare_cursor(\"%s\") failed: %s", sql, SPI_result_code_string(SPI_result));
			ret = SPI_execute_plan(plan, values, nulls, false, 0);
			SPI_freeplan(plan);
		}
	}
	else
		ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	/*
	 * SPI returns in its procedure's context, which lasts as long as the
	 * CALL: what a batch allocates after its first statement (the next
	 * statements' text, their results) would pile up there, batch after
	 * batch.  Back to the caller's, the batch's.
	 */
	MemoryContextSwitchTo(cxt);

	if (ret != expected)
		elog(ERROR, "SPI_execute_with_args(\"%s\") failed: %s", sql, SPI_result_code_string(ret));
	return SPI_processed;
}

static inline uint64
run_sql(const char *sql, int nargs, Oid *types, Datum *values, int expected)
{
	return run_sql_nulls(sql, nargs, types, values, NULL, expected);
}

/*
 * The same for the run's bookkeeping, whose statements are string
 * constants: each is parsed and planned once per backend, not once per
 * run (a nightly run of a small table is mostly its bookkeeping).  Keyed
 * by the constant's address; the plan cache replans after DDL.
 */
#define SAVED_PLANS		32

static struct
{
	const char *sql;
	SPIPlanPtr	plan;
}			saved_plans[SAVED_PLANS];

static uint64
run_saved_nulls(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
				int expected)
{
	MemoryContext cxt = CurrentMemoryContext;
	SPIPlanPtr	plan = NULL;
	int			i;
	int			ret;

	for (i = 0; i < SAVED_PLANS && saved_plans[i].sql != NULL; i++)
		if (saved_plans[i].sql == sql)
		{
			plan = saved_plans[i].plan;
			break;
		}
	if (plan == NULL)
	{
		/* generic: planned once, not again for each run's values */
		plan = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_GENERIC_PLAN);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare_cursor(\"%s\") failed: %s", sql, SPI_result_code_string(SPI_result));
		if (i < SAVED_PLANS && SPI_keepplan(plan) == 0)
		{
			saved_plans[i].sql = sql;
			saved_plans[i].plan = plan;
		}
	}
	if (SPI_tuptable != NULL)
	{
		SPI_freetuptable(SPI_tuptable);
		SPI_tuptable = NULL;
	}
	ret = SPI_execute_plan(plan, values, nulls, false, 0);
	MemoryContextSwitchTo(cxt); /* as run_sql_nulls() */
	if (ret != expected)
		elog(ERROR, "SPI_execute_plan(\"%s\") failed: %s", sql, SPI_result_code_string(ret));
	if (plan != saved_plans[Min(i, SAVED_PLANS - 1)].plan)
		SPI_freeplan(plan);
	return SPI_processed;
}

static inline uint64
run_saved(const char *sql, int nargs, Oid *types, Datum *values, int expected)
{
	return run_saved_nulls(sql, nargs, types, values, NULL, expected);
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
	(void) set_config_option("lock_timeout", psprintf("%dms", retention_lock_timeout),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
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

/*
 * The rows of a batch: its range of ended_at ($3 and $4), and for a batch
 * that walks the heap, its block range.
 */
static char *
batch_range(SweepLeaf *l)
{
	char	   *due = psprintf("x.%s %s $3 AND x.%s <= $4", l->ended_at,
							   l->lo_incl ? ">=" : ">", l->ended_at);

	if (l->plan->keyset)
		return due;
	return psprintf("x.ctid >= '(%u,0)'::tid AND x.ctid < '(%u,0)'::tid AND %s",
					l->from, l->to, due);
}

/* the WHERE clause of a batch: its rows, the prefilter, the state */
static char *
batch_where(SweepLeaf *l, int state)
{
	/* every row of the batch is fully due, as the fast path's partitions are */
	if (l->by_bound && state == ROW_DELETE)
		return psprintf("%s AND x.%s <= $1", batch_range(l), l->ended_at);
	return psprintf("%s AND x.%s <= $1 AND %s = %d",
					batch_range(l), l->ended_at, l->status_expr, state);
}

/*
 * A keyset batch: the next batch_size rows of the range by ended_at, read
 * from the btree on it (an index-only scan): the batch is (lo, hi], hi the
 * ended_at of the last of them (its ties with it too), or the range's end.
 */
static void
keyset_bound(SweepLeaf *l)
{
	bool		isnull;
	int64		n;

	run_sql(psprintf("SELECT count(*), max(s.e) FROM (SELECT x.%s AS e FROM %s x "
					 "WHERE x.%s %s $1 AND x.%s <= $2 ORDER BY x.%s LIMIT %d) s",
					 l->ended_at, l->qualified, l->ended_at, l->lo_incl ? ">=" : ">",
					 l->ended_at, l->ended_at, l->run->batch_size),
			2, (Oid[]) {l->maxcut_type, l->maxcut_type}, (Datum[]) {l->lo, l->range_hi},
			SPI_OK_SELECT);
	n = DatumGetInt64(first_value(&isnull));
	l->examined = n;
	l->examined_known = true;
	if (n < l->run->batch_size)
		l->hi = l->range_hi;
	else
	{
		/* the last one's ties are in the batch too: counted later, if need be */
		l->hi = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		l->examined_known = false;
	}
}

/* the rows of a keyset batch's range, ties of its last one included */
static void
keyset_examined(SweepLeaf *l)
{
	bool		isnull;

	run_sql(psprintf("SELECT count(*) FROM %s x WHERE x.%s %s $1 AND x.%s <= $2",
					 l->qualified, l->ended_at, l->lo_incl ? ">=" : ">", l->ended_at),
			2, (Oid[]) {l->maxcut_type, l->maxcut_type}, (Datum[]) {l->lo, l->hi},
			SPI_OK_SELECT);
	l->examined = DatumGetInt64(first_value(&isnull));
	l->examined_known = true;
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

/*
 * Where nothing can keep a row (no hold, no consent, no billing anchor,
 * nothing kept anonymized), a batch whose range ends at hi, before every
 * column's deadline, holds only rows due whole.  Not when paced: the row
 * test is where the pacing waits.
 */
static bool
bound_proves_due(const SweepLeaf *l, Datum hi)
{
	return !l->keep_anonymized && !l->has_holds && !l->has_marketing &&
		!l->has_anchor && retention_max_wal_rate <= 0 &&
		DatumGetTimestampTz(hi) <= l->plan->all_due;
}

static void
batch_step(void *arg)
{
	SweepLeaf  *l = (SweepLeaf *) arg;
	Oid			types[4] = {l->maxcut_type, TIMESTAMPTZOID, l->maxcut_type, l->maxcut_type};
	Datum		values[4];
	SweepCounts *c = l->counts;
	int64		skipped_before = c->skipped;
	int64		anonymized_before = c->anonymized;
	int64		deleted_before = c->deleted;
	int64		kept_before = c->kept;
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
		/* placed since the leaf's start: the row test and the triggers look */
		l->has_holds = true;
		if (l->decision != NULL)
			l->decision->unheld = InvalidOid;
		l->status_expr = MemoryContextStrdup(l->cxt,
											 psprintf("retention._sweep_row(%s)",
													  sweep_row_args(l->leaf, true, NULL)));
	}
	set_lock_timeout();
	l->by_stats = false;
	if (l->plan->keyset)
	{
		/*
		 * A range whose rows the bound proves due whole is cut where its
		 * histogram puts half a batch of rows (plan_leaf()): each slice is
		 * one DELETE, which counts its rows, and the btree is walked once,
		 * not twice.  Otherwise the next batch_size rows are read from it.
		 */
		if (l->stats_cut && bound_proves_due(l, l->range_hi))
		{
			const DueRange *r = l->range;

			while (l->next_cut < r->ncuts &&
				   r->cuts[l->next_cut] <= DatumGetTimestampTz(l->lo))
				l->next_cut++;
			l->hi = l->next_cut < r->ncuts ? TimestampTzGetDatum(r->cuts[l->next_cut]) : l->range_hi;
			l->examined_known = false;
			l->by_stats = true;
		}
		else
			keyset_bound(l);
	}

	/* every row of the batch fully due: no row test, nothing to anonymize */
	l->by_bound = bound_proves_due(l, l->hi);
	/*
	 * By the bound, every row of the range is deleted (or skipped, or kept
	 * by a trigger of the table's: counted below), so the DELETE counts
	 * them; otherwise they are counted.
	 */
	if (l->plan->keyset && !l->examined_known && !l->by_bound)
		keyset_examined(l);
	values[0] = l->maxcut;
	values[1] = TimestampTzGetDatum(l->run->cutoff);
	values[2] = l->lo;
	values[3] = l->hi;
	/*
	 * A batch's commit need not wait for its WAL to reach disk: after a
	 * crash, a lost batch is only swept again (its log row goes with it).
	 */
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	/*
	 * The rules run in the expiry triggers: a session in replica mode too.
	 * Set from C: the batch runs as the table's owner, who may not.
	 */
	(void) set_config_option("session_replication_role", "origin", PGC_SUSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);

	for (i = 0; i < lengthof(states); i++)
	{
		int			state = states[i];
		bool		returning = l->recheck && state == ROW_ANONYMIZE;
		int			expected = state == ROW_DELETE ? SPI_OK_DELETE :
			returning ? SPI_OK_UPDATE_RETURNING : SPI_OK_UPDATE;

		if (state == ROW_DELETE && l->keep_anonymized)
			continue;
		if (state == ROW_ANONYMIZE && l->by_bound)
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
			n = run_sql(sql, 4, types, values, expected);
		}
		else
		{
			uint64		candidates;
			bool		isnull;

			sql = psprintf("SELECT count(*) FROM %s x WHERE %s", l->qualified, batch_where(l, state));
			run_sql(sql, 4, types, values, SPI_OK_SELECT);
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
			n = run_sql(sql, 4, types, values, expected);
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
		const char *range = batch_range(l);

		sql = psprintf("SELECT count(*) FROM %s x WHERE %s AND x.%s <= $1 AND %s IN (%d, %d)",
					   l->qualified, range, l->ended_at, l->status_expr, ROW_ANONYMIZE, ROW_DELETE);
		run_sql(sql, 4, types, values, SPI_OK_SELECT);
		in_range = DatumGetInt64(first_value(&isnull));
		/* rows locked by others were counted as skipped, not kept */
		in_range -= Min(in_range, c->skipped - skipped_before);
		if (updated != (Datum) 0)
		{
			/* rows an UPDATE wrote back as they were (maybe to another block) */
			sql = psprintf("SELECT count(*), count(*) FILTER (WHERE NOT (%s)) FROM %s x "
						   "WHERE x.ctid = ANY ($5) AND %s IN (%d, %d)",
						   range, l->qualified, l->status_expr, ROW_ANONYMIZE, ROW_DELETE);
			run_sql(sql, 5, (Oid[]) {l->maxcut_type, TIMESTAMPTZOID, l->maxcut_type,
						l->maxcut_type, TIDARRAYOID},
					(Datum[]) {l->maxcut, TimestampTzGetDatum(l->run->cutoff), l->lo, l->hi,
					updated},
					SPI_OK_SELECT);
			unchanged = DatumGetInt64(first_value(&isnull));
			moved_out = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 2, &isnull));
		}
		c->anonymized -= Min(unchanged, c->anonymized - anonymized_before);
		c->kept += in_range + moved_out;
	}
	/* by the bound: the range's rows are those deleted, skipped or kept */
	if (!l->examined_known)
		l->examined = (c->deleted - deleted_before) + (c->skipped - skipped_before) +
			(c->kept - kept_before);

	if (l->has_holds)
	{
		bool		isnull;

		sql = psprintf("SELECT count(*) FROM %s x WHERE %s", l->qualified, batch_where(l, ROW_HELD));
		run_sql(sql, 4, types, values, SPI_OK_SELECT);
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
 * What is due: the ranges of ended_at a leaf's sweep visits
 * -------------------------------------------------------------------------
 *
 * A leaf's rows fall due as time passes, by ended_at: column i of a row is
 * due once ended_at is at or before b_i(cutoff), the latest ended_at its
 * purposes still keep.  A run that swept the leaf to the end, skipping
 * nothing, records its cutoff P in retention.sweep_mark; the next run, at
 * cutoff C, need only visit the rows with ended_at in (b_i(P), b_i(C)] for
 * each column: the rest were seen by then and have nothing more due by
 * time.  Rows that fall due for another reason are found by a full pass
 * (every row up to maxcut, as a first sweep does):
 *
 *	- a full pass is requested (retention.request_full_sweep(): a hold
 *	  released or shortened, a consent withdrawn, a window or regime
 *	  changed, the table protected again);
 *	- the rules the mark was computed by differ (columns, purposes, on_expiry,
 *	  windows: the signature below);
 *	- a hold's until or a consent's end, recorded with the mark, has passed;
 *	- the table has a billing anchor (that deadline is not ended_at's).
 *
 * Each range is then refuted against the leaf's partition bound: a leaf
 * that can hold nothing in any range is skipped without reading it.
 */

/*
 * The latest ended_at at which column i of t is due at cut, as
 * expiry_due_bound() counts it for the whole row; false when the column's
 * deadline is not ended_at's (billing under a billing anchor).
 */
static bool
column_due_bound(const RetentionTable *t, int i, const RetentionCutoffs *cut, TimestampTz *bound)
{
	bool		exact;

	/* a decree or the direction: decided at write, the cutoff moves */
	return expiry_column_bound(t, i, cut, true, false, bound, &exact);
}

/*
 * The rules by which a leaf's rows fall due, as text: its columns and their
 * purposes and methods, on_expiry, and each purpose's cutoff at a fixed
 * moment (so a window or ceiling changed changes it).
 */
static char *
rules_signature(const RetentionTable *t)
{
	RetentionCutoffs ref;
	StringInfoData s;
	int			i;

	retention_cutoffs((TimestampTz) 0, &ref);
	initStringInfo(&s);
	appendStringInfo(&s, "e%d:%u a%d k%d m%d l%d o%d", t->ended_at, t->ended_at_type, t->anchor,
					 t->keep_anonymized, t->has_marketing, t->has_location, t->originated);
	for (i = 0; i < t->ncolumns; i++)
		appendStringInfo(&s, " c%d:%x:%d", t->columns[i].attnum,
						 (unsigned int) t->columns[i].purposes, (int) t->columns[i].method);
	for (i = 0; i < RETENTION_NUM_PURPOSES; i++)
		appendStringInfo(&s, " p" INT64_FORMAT, (int64) ref.cutoff[i]);
	return s.data;
}

static int
due_range_cmp(const void *a, const void *b)
{
	const DueRange *x = a;
	const DueRange *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo ? 1 : 0;
}

/* "ended_at OP value" for the predicate prover */
static Expr *
ended_at_clause(const RetentionTable *t, int strategy, TimestampTz value)
{
	TypeCacheEntry *tc = lookup_type_cache(t->ended_at_type, TYPECACHE_BTREE_OPFAMILY);
	Oid			op = get_opfamily_member(tc->btree_opf, t->ended_at_type, t->ended_at_type,
										 strategy);

	if (!OidIsValid(op))
		return NULL;
	return make_opclause(op, BOOLOID, false,
						 (Expr *) makeVar(1, t->ended_at, t->ended_at_type, -1, InvalidOid, 0),
						 (Expr *) makeConst(t->ended_at_type, -1, InvalidOid, sizeof(int64),
											TimestampTzGetDatum(value), false, FLOAT8PASSBYVAL),
						 InvalidOid, InvalidOid);
}

/* does the partition's bound prove that no row of it is in range r? */
static bool
range_refuted(const RetentionTable *t, List *partqual, const DueRange *r)
{
	Expr	   *le;
	Expr	   *gt = NULL;

	if (partqual == NIL)
		return false;
	le = ended_at_clause(t, BTLessEqualStrategyNumber, r->hi);
	if (r->lo != DT_NOBEGIN)
		gt = ended_at_clause(t, r->lo_incl ? BTGreaterEqualStrategyNumber :
							 BTGreaterStrategyNumber, r->lo);
	if (le == NULL)
		return false;
	return predicate_refuted_by(gt ? list_make2(le, gt) : list_make1(le), partqual, false);
}

/* a SQL literal of ended_at's type */
static char *
ended_at_literal(const RetentionTable *t, TimestampTz v)
{
	Oid			out;
	bool		varlena;

	getTypeOutputInfo(t->ended_at_type, &out, &varlena);
	return psprintf("%s::%s", quote_literal_cstr(OidOutputFunctionCall(out, TimestampTzGetDatum(v))),
					format_type_be(t->ended_at_type));
}

/* the planner's estimate of the rows sql returns */
static double
plan_rows(const char *sql)
{
	MemoryContext cxt = CurrentMemoryContext;
	SPIPlanPtr	plan = SPI_prepare(sql, 0, NULL);
	CachedPlan *cplan;
	double		rows = 0;

	if (plan == NULL)
		elog(ERROR, "SPI_prepare(\"%s\") failed: %s", sql, SPI_result_code_string(SPI_result));
	cplan = SPI_plan_get_cached_plan(plan);
	if (cplan != NULL)
	{
		rows = linitial_node(PlannedStmt, cplan->stmt_list)->planTree->plan_rows;
		ReleaseCachedPlan(cplan, NULL);
	}
	SPI_freeplan(plan);
	MemoryContextSwitchTo(cxt); /* as run_sql_nulls() */
	return rows;
}

/* the part of [a, b] that (lo, hi] covers, as a fraction of it */
static double
overlap(double a, double b, double lo, double hi)
{
	double		from = Max(a, lo);
	double		to = Min(b, hi);

	if (to <= from)
		return 0;
	return b > a ? (to - from) / (b - a) : 1;
}

/*
 * The rows of rel with column attnum (a timestamp) in range r, from its
 * statistics as the planner reads them (the most common values, then the
 * histogram, interpolated linearly within a bucket): cheaper than planning
 * a query for its estimate.  -1 when the column has no histogram.
 *
 * r->covered: the histogram reaches past the range's end, so that the rows
 * in the range were there when the statistics were taken (a table's old
 * rows do not change; what is written late into the past is a restore,
 * which asks for a full pass).  A range past its end holds rows written
 * since, which no estimate counts.  And r->cuts: where the histogram cuts
 * the range into slices of about slice rows each, in order (at most
 * MAX_SLICES of them: a range of more is not covered, but walked).
 */
#define MAX_SLICES 65536

static double
range_rows_estimate(Relation rel, AttrNumber attnum, DueRange *r, double slice)
{
	HeapTuple	tup;
	AttStatsSlot mcv;
	AttStatsSlot hist;
	double		lo = r->lo == DT_NOBEGIN ? -DBL_MAX : (double) r->lo;
	double		hi = (double) r->hi;
	double		hist_frac;
	double		frac = 0;
	double		rows = RelationGetNumberOfBlocks(rel) * rows_per_block(rel);
	int			i;

	r->covered = false;
	r->ncuts = 0;
	r->cuts = NULL;
	tup = SearchSysCache3(STATRELATTINH, ObjectIdGetDatum(RelationGetRelid(rel)),
						  Int16GetDatum(attnum), BoolGetDatum(false));
	if (!HeapTupleIsValid(tup))
		return -1;
	hist_frac = 1.0 - ((Form_pg_statistic) GETSTRUCT(tup))->stanullfrac;
	if (get_attstatsslot(&mcv, tup, STATISTIC_KIND_MCV, InvalidOid,
						 ATTSTATSSLOT_VALUES | ATTSTATSSLOT_NUMBERS))
	{
		for (i = 0; i < mcv.nvalues; i++)
		{
			double		v = (double) DatumGetTimestampTz(mcv.values[i]);

			hist_frac -= mcv.numbers[i];
			if (v > lo && v <= hi)
				frac += mcv.numbers[i];
		}
		free_attstatsslot(&mcv);
	}
	if (!get_attstatsslot(&hist, tup, STATISTIC_KIND_HISTOGRAM, InvalidOid, ATTSTATSSLOT_VALUES))
	{
		ReleaseSysCache(tup);
		return -1;
	}
	if (hist.nvalues > 1)
	{
		double		bucket = Max(hist_frac, 0) * rows / (hist.nvalues - 1);
		double		in = 0;
		double		next = slice;
		int			max_cuts = 0;
		bool		too_many = false;

		for (i = 0; i + 1 < hist.nvalues; i++)
		{
			double		a = (double) DatumGetTimestampTz(hist.values[i]);
			double		b = (double) DatumGetTimestampTz(hist.values[i + 1]);
			double		part = overlap(a, b, lo, hi);
			double		from = Max(a, lo);
			double		to = Min(b, hi);

			if (part <= 0)
				continue;
			/* a cut wherever the rows so far reach another slice */
			while (slice > 0 && (in + part) * bucket >= next)
			{
				TimestampTz cut = (TimestampTz) (b > a ?
												 from + (next / bucket - in) / part * (to - from) :
												 a);

				if (r->ncuts >= MAX_SLICES)
				{
					/* too many to keep: walked (nothing so large is a night's) */
					pfree(r->cuts);
					r->cuts = NULL;
					r->ncuts = 0;
					slice = 0;
					too_many = true;
					break;
				}
				if (r->ncuts >= max_cuts)
				{
					max_cuts = Max(16, max_cuts * 2);
					r->cuts = r->cuts == NULL ? palloc(sizeof(TimestampTz) * max_cuts) :
						repalloc(r->cuts, sizeof(TimestampTz) * max_cuts);
				}
				if (cut > r->lo && cut < r->hi &&
					(r->ncuts == 0 || cut > r->cuts[r->ncuts - 1]))
					r->cuts[r->ncuts++] = cut;
				next += slice;
			}
			in += part;
		}
		frac += Max(hist_frac, 0) * in / (hist.nvalues - 1);
		r->covered = !too_many && DatumGetTimestampTz(hist.values[hist.nvalues - 1]) > r->hi;
	}
	free_attstatsslot(&hist);
	ReleaseSysCache(tup);
	return clamp_row_est(frac * rows);
}

/*
 * How leaf is swept by this run: its ranges of ended_at, whether a btree
 * or a BRIN on ended_at drives its batches, and the rows it will examine.
 */
static void
plan_leaf(SweepRun *run, Oid leaf, SweepMark *mark, LeafPlan *lp)
{
	RetentionTable *t = retention_table(leaf);
	RetentionCutoffs cut;
	RetentionCutoffs prev;
	TimestampTz maxcut;
	TimestampTz widen = 0;
	Relation	rel;
	List	   *partqual;
	ListCell   *lc;
	int			i;
	int			n;

	memset(lp, 0, sizeof(*lp));
	lp->leaf = leaf;
	lp->mark = mark;
	if (t->ended_at == InvalidAttrNumber || t->ncolumns == 0)
		return;					/* sweep_leaf() says so, or has nothing to do */

	retention_cutoffs(run->cutoff, &cut);
	maxcut = retention_table_maxcut(t, &cut);
	lp->signature = rules_signature(t);
	/* fully due: ended_at at or before every column's deadline */
	lp->all_due = DT_NOEND;
	for (i = 0; i < t->ncolumns; i++)
	{
		TimestampTz b;

		if (!column_due_bound(t, i, &cut, &b))
			b = DT_NOBEGIN;
		lp->all_due = Min(lp->all_due, b);
	}
	if (t->ended_at_type == TIMESTAMPOID && !TIMESTAMP_NOT_FINITE(lp->all_due))
		lp->all_due -= (TimestampTz) 15 * USECS_PER_HOUR;	/* any zone */
	/* a column without time zone: its values are instants in any zone */
	if (t->ended_at_type == TIMESTAMPOID)
		widen = (TimestampTz) 15 * USECS_PER_HOUR;

	if (!run->marks)
		lp->why_full = "the extension is not updated";
	else if (mark == NULL || !mark->has_cutoff)
		lp->why_full = "not swept to the end before";
	else if (mark->requested)
		lp->why_full = "a full pass was requested";
	else if (mark->signature == NULL || strcmp(mark->signature, lp->signature) != 0)
		lp->why_full = "the table's rules changed";
	else if (mark->has_after && mark->full_pass_after <= run->cutoff)
		lp->why_full = "a hold or a consent ended";
	else if (mark->swept_cutoff > run->cutoff)
		lp->why_full = "the last sweep's cutoff is later than this one's";

	lp->ranges = palloc(sizeof(DueRange) * (t->ncolumns + 1));
	n = 0;
	if (lp->why_full == NULL)
	{
		retention_cutoffs(mark->swept_cutoff, &prev);
		for (i = 0; i < t->ncolumns; i++)
		{
			TimestampTz from;
			TimestampTz to;

			if (!column_due_bound(t, i, &prev, &from) || !column_due_bound(t, i, &cut, &to))
			{
				lp->why_full = "the billing anchor's deadline is not ended_at's";
				break;
			}
			if (from >= to)
				continue;
			lp->ranges[n].lo = TIMESTAMP_NOT_FINITE(from) ? from : from - widen;
			lp->ranges[n].hi = Min(TIMESTAMP_NOT_FINITE(to) ? to : to + widen, maxcut);
			lp->ranges[n].lo_incl = false;
			lp->ranges[n].estimate = -1;
			lp->ranges[n].covered = false;
			lp->ranges[n].ncuts = 0;
			if (lp->ranges[n].lo < lp->ranges[n].hi)
				n++;
		}
		retention_cutoffs(run->cutoff, &cut);
	}
	if (lp->why_full != NULL)
	{
		lp->full_pass = true;
		lp->ranges[0].lo = DT_NOBEGIN;
		lp->ranges[0].hi = maxcut;
		lp->ranges[0].lo_incl = true;
		lp->ranges[0].estimate = -1;
		lp->ranges[0].covered = false;
		lp->ranges[0].ncuts = 0;
		n = 1;
	}
	else if (n > 1)
	{
		/* merged: each row is visited once */
		int			m = 0;

		qsort(lp->ranges, n, sizeof(DueRange), due_range_cmp);
		for (i = 1; i < n; i++)
		{
			if (lp->ranges[i].lo <= lp->ranges[m].hi)
				lp->ranges[m].hi = Max(lp->ranges[m].hi, lp->ranges[i].hi);
			else
				lp->ranges[++m] = lp->ranges[i];
		}
		n = m + 1;
	}

	rel = relation_open(leaf, AccessShareLock);
	partqual = rel->rd_rel->relispartition ? RelationGetPartitionQual(rel) : NIL;
	lp->nranges = 0;
	for (i = 0; i < n; i++)
		if (!range_refuted(t, partqual, &lp->ranges[i]))
			lp->ranges[lp->nranges++] = lp->ranges[i];
	if (lp->nranges == 0)
	{
		lp->skip = true;
		relation_close(rel, NoLock);
		return;
	}

	/* a btree whose first column is ended_at, or a BRIN on it */
	foreach(lc, RelationGetIndexList(rel))
	{
		Relation	ind = index_open(lfirst_oid(lc), AccessShareLock);
		TypeCacheEntry *tc = lookup_type_cache(t->ended_at_type, TYPECACHE_BTREE_OPFAMILY);

		if (ind->rd_index->indisvalid && ind->rd_index->indkey.values[0] == t->ended_at &&
			RelationGetIndexPredicate(ind) == NIL)
		{
			if (ind->rd_rel->relam == BTREE_AM_OID && ind->rd_opfamily[0] == tc->btree_opf)
				lp->keyset = true;
			else if (ind->rd_rel->relam == BRIN_AM_OID)
				lp->brin = true;
		}
		index_close(ind, AccessShareLock);
	}

	if (lp->keyset)
	{
		char	   *q = qualified_name(leaf);
		const char *col = quote_identifier(NameStr(TupleDescAttr(RelationGetDescr(rel),
																 t->ended_at - 1)->attname));

		for (i = 0; i < lp->nranges; i++)
		{
			DueRange   *r = &lp->ranges[i];
			double		est = range_rows_estimate(rel, t->ended_at, r,
												lp->full_pass ? 0 : run->batch_size / 2.0);

			r->estimate = est;
			if (est >= 0)
			{
				lp->estimate += est;
				continue;
			}
			lp->estimate += plan_rows(psprintf("SELECT 1 FROM ONLY %s x WHERE %s x.%s <= %s",
											   q, r->lo == DT_NOBEGIN ? "" :
											   psprintf("x.%s %s %s AND", col, r->lo_incl ? ">=" : ">",
														ended_at_literal(t, r->lo)),
											   col, ended_at_literal(t, r->hi)));
		}
	}
	else
		lp->estimate = RelationGetNumberOfBlocks(rel) * rows_per_block(rel);
	relation_close(rel, NoLock);
}

/* the marks of table relid's leaves, as the previous runs left them */
static List *
read_marks(Oid relid)
{
	List	   *marks = NIL;
	uint64		i;

	/* marks of relations no longer among its leaves go */
	if (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
		run_saved("DELETE FROM retention.sweep_mark m WHERE m.root = $1::pg_catalog.regclass "
				  "AND m.relid::oid NOT IN (SELECT p.relid FROM pg_catalog.pg_partition_tree($1::pg_catalog.regclass) p "
				  "UNION ALL SELECT $1)",
				  1, (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(relid)}, SPI_OK_DELETE);
	run_saved("SELECT m.relid::oid, m.swept_cutoff, m.signature, m.requested_at, m.full_pass_after "
			"FROM retention.sweep_mark m WHERE m.root = $1::pg_catalog.regclass",
			1, (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(relid)}, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		SweepMark  *m = palloc0(sizeof(SweepMark));
		bool		isnull;
		Datum		d;

		m->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		d = SPI_getbinval(tup, desc, 2, &isnull);
		m->has_cutoff = !isnull;
		m->swept_cutoff = isnull ? 0 : DatumGetTimestampTz(d);
		m->signature = SPI_getvalue(tup, desc, 3);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		m->requested = !isnull;
		m->requested_at = isnull ? 0 : DatumGetTimestampTz(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		m->has_after = !isnull;
		m->full_pass_after = isnull ? 0 : DatumGetTimestampTz(d);
		marks = lappend(marks, m);
	}
	return marks;
}

typedef struct MarkWrite
{
	SweepRun   *run;
	Oid			root;
	LeafPlan   *lp;
	bool		has_marketing;
} MarkWrite;

/*
 * The leaf was swept to the end, nothing skipped: record the run's cutoff,
 * unless a full pass was requested since the leaf's mark was read, and
 * when the next full pass falls due (a hold's until, a consent's end).
 */
static void
mark_write_step(void *arg)
{
	MarkWrite  *mw = (MarkWrite *) arg;
	SweepMark  *m = mw->lp->mark;

	run_saved_nulls("INSERT INTO retention.sweep_mark AS m (relid, root, swept_cutoff, signature, full_pass_after) "
				  "SELECT $1::pg_catalog.regclass, $2::pg_catalog.regclass, $3, $4, "
				  "least((SELECT pg_catalog.min(h.until) FROM retention.hold h "
				  "WHERE h.relid = $2::pg_catalog.regclass AND h.released_at IS NULL AND h.until > $3), "
				  "CASE WHEN $6 THEN least((SELECT pg_catalog.min(least(c.valid_until, c.contract_end)) "
				  "FROM retention.consent c WHERE c.withdrawn_at IS NULL "
				  "AND least(c.valid_until, c.contract_end) > $3), "
				  "(SELECT pg_catalog.min(l.valid_until) FROM retention.location_consent l "
				  "WHERE l.withdrawn_at IS NULL AND l.suspended_at IS NULL AND l.valid_until > $3)) END) "
				  "ON CONFLICT (relid) DO UPDATE SET root = excluded.root, swept_cutoff = excluded.swept_cutoff, "
				  "signature = excluded.signature, full_pass_after = excluded.full_pass_after, "
				  "requested_at = NULL, reason = NULL "
				  "WHERE m.requested_at IS NOT DISTINCT FROM $5",
				  6, (Oid[]) {OIDOID, OIDOID, TIMESTAMPTZOID, TEXTOID, TIMESTAMPTZOID, BOOLOID},
				  (Datum[]) {ObjectIdGetDatum(mw->lp->leaf), ObjectIdGetDatum(mw->root),
					  TimestampTzGetDatum(mw->run->cutoff), CStringGetTextDatum(mw->lp->signature),
					  TimestampTzGetDatum(m && m->requested ? m->requested_at : 0),
				  BoolGetDatum(mw->has_marketing)},
				  m && m->requested ? "      " : "    n ",
				  SPI_OK_INSERT);
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

	run_saved("UPDATE retention.sweep_log SET phase = $2, rows_scanned = $3, rows_anonymized = $4, "
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

/*
 * One batch, redone with SKIP LOCKED if it met a locked row; batch_done()
 * commits it.  Whatever it allocates goes with batch_cxt: memory stays flat.
 */
static ErrorData *
run_batch(SweepLeaf *l, MemoryContext batch_cxt)
{
	SweepCounts *counts = l->counts;
	ErrorData  *volatile edata;
	MemoryContext oldcxt;
	RetentionDecision d;

	l->skip_locked = false;
	MemoryContextReset(batch_cxt);
	oldcxt = MemoryContextSwitchTo(batch_cxt);
	generic_plans = true;
	keep_batch_plans = l->plan->keyset;
	/*
	 * The batch re-writes the leaf's rows as of the run's cutoff; no hold
	 * can appear before it commits, so where the table had none the trigger
	 * need not look.
	 */
	d = *retention_decision();
	d.rewriting = l->leaf;
	d.unheld = l->has_holds ? InvalidOid : l->leaf;
	l->decision = &d;
	retention_decision_push(&d);
	PG_TRY();
	{
		SweepCounts before = *counts;

		edata = retention_run_restricted(l->leaf_owner, batch_step, l);
		if (edata != NULL && edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
		{
			/*
			 * Someone holds a row: take what is free, the rest next time.
			 * What the first try counted was rolled back with it.
			 */
			before.paused_us = counts->paused_us;
			*counts = before;
			l->skip_locked = true;
			edata = retention_run_restricted(l->leaf_owner, batch_step, l);
		}
	}
	PG_FINALLY();
	{
		retention_decision_pop(&d);
		l->decision = NULL;
	}
	PG_END_TRY();
	generic_plans = false;
	keep_batch_plans = false;
	pace_active = false;
	counts->paused_us += pace_paused_us;
	pace_paused_us = 0;
	if (edata != NULL)
	{
		MemoryContextSwitchTo(oldcxt);
		return edata;			/* allocated in batch_cxt, which stays until the run ends */
	}
	MemoryContextSwitchTo(oldcxt);
	return NULL;
}

/*
 * A batch done and counted: what the run did so far, for sweep_progress,
 * committed.  After the table's last batch the final log row says it all,
 * a moment later.  Even the last batch commits on its own: it holds the
 * lock that hold() waits for, and the final row's audit entry takes the
 * audit log's, which a transaction that audited something and then called
 * hold() holds already.
 */
static void
batch_done(SweepLeaf *l, MemoryContext batch_cxt, int64 log_id, bool more)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(batch_cxt);

	if (more || !l->plan->last)
		log_progress(l->run, log_id, "sweeping", l->counts);
	MemoryContextSwitchTo(oldcxt);
	sweep_commit(l->run);
}

/* between two batches: the pause, a cancel, the postmaster gone */
static void
between_batches(SweepLeaf *l, bool more)
{
	if (retention_batch_delay > 0 && more)
		l->counts->paused_us += sweep_pause(retention_batch_delay);
	CHECK_FOR_INTERRUPTS();

	/*
	 * A batch need not wait on a latch, so nothing else notices that the
	 * postmaster is gone: a sweep that went on would keep the old server's
	 * shared memory in use and its restart refused.
	 */
	if (!PostmasterIsAlive())
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("terminating sweep due to unexpected postmaster exit")));
}

typedef struct BrinBlocks
{
	SweepLeaf  *l;
	BlockNumber step;
	List	   *chunks;			/* of block ranges of step blocks, as int */
} BrinBlocks;

/*
 * The block ranges of step blocks that hold a row in the leaf's ranges of
 * ended_at, by a bitmap scan of its BRIN: only those are walked.
 */
static void
brin_chunks_step(void *arg)
{
	BrinBlocks *bb = (BrinBlocks *) arg;
	SweepLeaf  *l = bb->l;
	uint64		i;

	run_sql(psprintf("SELECT DISTINCT ((x.ctid::text::point)[0] / %u)::int8 AS c FROM %s x "
					 "WHERE x.%s %s $1 AND x.%s <= $2 ORDER BY c",
					 bb->step, l->qualified, l->ended_at, l->lo_incl ? ">=" : ">", l->ended_at),
			2, (Oid[]) {l->maxcut_type, l->maxcut_type}, (Datum[]) {l->lo, l->hi}, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		bb->chunks = lappend_int(bb->chunks,
								 (int) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
																   SPI_tuptable->tupdesc, 1, &isnull)));
	}
}

/* returns NULL, or the error that stopped this leaf */
static ErrorData *
sweep_leaf(SweepRun *run, Oid root, LeafPlan *lp, bool has_holds, int64 log_id,
		   SweepCounts *counts)
{
	Oid			leaf = lp->leaf;
	SweepLeaf	l;
	Relation	rel;
	BlockNumber nblocks;
	double		per_block;
	BlockNumber step;
	RetentionCutoffs cut;
	ErrorData  *edata;
	bool		is_partition;
	MemoryContext batch_cxt;
	int64		skipped_before = counts->skipped;
	int64		kept_before = counts->kept;
	bool		marked;
	bool		has_marketing;
	int			r;

	/* its bound proves nothing in it due since the last sweep: not opened */
	if (lp->skip)
		return NULL;
	memset(&l, 0, sizeof(l));
	l.plan = lp;
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
	marked = run->marks && l.t->anchor == InvalidAttrNumber;
	/* kept under a consent, marketing's or location's */
	has_marketing = expiry_has_consents(l.t);
	l.has_marketing = has_marketing;
	l.has_anchor = l.t->anchor != InvalidAttrNumber;
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
			if (marked)
			{
				MarkWrite	mw = {run, root, lp, has_marketing};

				run_as_owner(run, mark_write_step, &mw);
				sweep_commit(run);
			}
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
	if (lp->keyset)
	{
		/* batches of batch_size rows by ended_at, from its btree */
		for (r = 0; r < lp->nranges; r++)
		{
			l.lo = TimestampTzGetDatum(lp->ranges[r].lo);
			l.lo_incl = lp->ranges[r].lo_incl;
			l.range_hi = TimestampTzGetDatum(lp->ranges[r].hi);
			l.range = &lp->ranges[r];
			l.next_cut = 0;
			/*
			 * A full pass's range is walked: a restore, which asks for one,
			 * may have written rows the statistics do not know of.
			 */
			l.stats_cut = !lp->full_pass && lp->ranges[r].covered;
			for (;;)
			{
				bool		last;

				edata = run_batch(&l, batch_cxt);
				if (edata != NULL)
					return edata;
				/* a slice of twice a batch: the statistics are wrong, walk the rest */
				if (l.by_stats && l.examined > 2 * (int64) run->batch_size)
					l.stats_cut = false;
				counts->scanned += l.examined;
				last = DatumGetTimestampTz(l.hi) >= DatumGetTimestampTz(l.range_hi);
				batch_done(&l, batch_cxt, log_id, !last || r + 1 < lp->nranges);
				between_batches(&l, !last || r + 1 < lp->nranges);
				if (last)
					break;
				l.lo = l.hi;
				l.lo_incl = false;
			}
		}
	}
	else
	{
		/*
		 * Block ranges of batch_size rows, with the ranges of ended_at as a
		 * prefilter; with a BRIN on ended_at, only those that hold some.
		 */
		List	   *chunks = NIL;
		ListCell   *lc;

		l.lo = TimestampTzGetDatum(lp->ranges[0].lo);
		l.lo_incl = lp->ranges[0].lo_incl;
		l.hi = TimestampTzGetDatum(lp->ranges[lp->nranges - 1].hi);
		step = (BlockNumber) Max(1.0, run->batch_size / Max(per_block, 1.0));
		if (lp->brin)
		{
			BrinBlocks	bb = {&l, step, NIL};

			edata = retention_run_restricted(l.leaf_owner, brin_chunks_step, &bb);
			if (edata != NULL)
				return edata;
			chunks = bb.chunks;
		}
		else
		{
			BlockNumber b;

			for (b = 0; b < nblocks; b += step)
				chunks = lappend_int(chunks, (int) (b / step));
		}
		foreach(lc, chunks)
		{
			l.from = (BlockNumber) lfirst_int(lc) * step;
			l.to = Min(nblocks, l.from + step);
			if (l.from >= nblocks)
				break;
			edata = run_batch(&l, batch_cxt);
			if (edata != NULL)
				return edata;
			counts->scanned += (int64) ((l.to - l.from) * per_block);
			batch_done(&l, batch_cxt, log_id, lnext(chunks, lc) != NULL);
			between_batches(&l, lnext(chunks, lc) != NULL);
		}
	}
	MemoryContextDelete(batch_cxt);

	/*
	 * Swept to the end, nothing skipped: the next run starts from here.
	 * The mark is written with the table's final log row (a lost mark is
	 * only a leaf visited again).
	 */
	if (marked && counts->skipped == skipped_before && counts->kept == kept_before)
	{
		lp->mark_due = true;
		lp->has_marketing = has_marketing;
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

/*
 * The table's sweep_log row.  A 'running' row is the run's first: one
 * statement also marks an earlier run's row left 'running' interrupted,
 * and records the regime in force and the cutoffs of the run's moment (the
 * C engine's own, as retention._sweep_log_rules() would: its trigger fires
 * only for rows inserted otherwise).  A database still at 1.0 has neither.
 */
static int64
insert_log(SweepRun *run, Oid relid, const char *status, const char *error, int64 estimate)
{
	bool		isnull;
	/* the rules' own cache knows it: no call of regime_in_force() per table */
	const char *regime = run->legacy_locks ? NULL : retention_regime_in_force();
	char		nulls[] = "        ";

	if (error == NULL)
		nulls[5] = 'n';
	if (regime == NULL)
		nulls[7] = 'n';

	run_saved_nulls(run->legacy_locks ?
			"WITH interrupted AS (UPDATE retention.sweep_log SET status = 'interrupted', "
			"error = 'the run ended before this table was done (server stop, crash or cancel)' "
			"WHERE relid = $2 AND status = 'running' AND $4 = 'running') "
			"INSERT INTO retention.sweep_log (run_id, relid, started_at, cutoff, status, phase, "
			"rows_estimate, run_by, error, finished_at) "
			"SELECT $1, $2, clock_timestamp(), $3, $4, 'starting', $7, $5, $6, "
			"CASE WHEN $4 <> 'running' THEN clock_timestamp() END RETURNING id" :
			"WITH interrupted AS (UPDATE retention.sweep_log SET status = 'interrupted', "
			"error = 'the run ended before this table was done (server stop, crash or cancel)' "
			"WHERE relid = $2 AND status = 'running' AND $4 = 'running') "
			"INSERT INTO retention.sweep_log (run_id, relid, started_at, cutoff, status, phase, "
			"rows_estimate, run_by, error, finished_at, regime, cutoffs) "
			"SELECT $1, $2, clock_timestamp(), $3, $4, 'starting', $7, $5, $6, "
			"CASE WHEN $4 <> 'running' THEN clock_timestamp() END, "
			"CASE WHEN $4 = 'running' THEN coalesce($8, retention.regime_in_force()) END, "
			"CASE WHEN $4 = 'running' THEN retention._cutoffs($3) END RETURNING id",
			8, (Oid[]) {INT8OID, OIDOID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID},
			(Datum[]) {Int64GetDatum(run->run_id), ObjectIdGetDatum(relid),
				TimestampTzGetDatum(run->cutoff), CStringGetTextDatum(status),
				CStringGetTextDatum(run->run_by),
				error ? CStringGetTextDatum(error) : (Datum) 0,
				Int64GetDatum(estimate),
			regime ? CStringGetTextDatum(regime) : (Datum) 0},
			nulls,
			SPI_OK_INSERT_RETURNING);
	return DatumGetInt64(first_value(&isnull));
}

typedef struct TableStart
{
	SweepRun   *run;
	Oid			relid;
	int64		log_id;
	bool		has_holds;
	List	   *plans;			/* of LeafPlan: the leaves, and how each is swept */
} TableStart;

static void
table_start_step(void *arg)
{
	TableStart *ts = (TableStart *) arg;
	List	   *leaves = NIL;
	List	   *marks = NIL;
	ListCell   *lc;
	double		estimate = 0;

	/* the relations that hold rows: the table, or its leaf partitions */
	if (get_rel_relkind(ts->relid) == RELKIND_PARTITIONED_TABLE)
	{
		foreach(lc, find_all_inheritors(ts->relid, AccessShareLock, NULL))
			if (get_rel_relkind(lfirst_oid(lc)) == RELKIND_RELATION)
				leaves = lappend_oid(leaves, lfirst_oid(lc));
	}
	else
		leaves = list_make1_oid(ts->relid);
	if (ts->run->marks && !ts->run->dry_run)
		marks = read_marks(ts->relid);

	/* what each leaf's sweep will visit, and the rows it will examine */
	foreach(lc, leaves)
	{
		LeafPlan   *lp = palloc(sizeof(LeafPlan));
		SweepMark  *mark = NULL;
		ListCell   *mc;

		foreach(mc, marks)
			if (((SweepMark *) lfirst(mc))->relid == lfirst_oid(lc))
				mark = (SweepMark *) lfirst(mc);
		plan_leaf(ts->run, lfirst_oid(lc), mark, lp);
		estimate += lp->estimate;
		ts->plans = lappend(ts->plans, lp);
	}
	if (ts->plans != NIL)
		((LeafPlan *) llast(ts->plans))->last = true;
	/* and an earlier run that left its row 'running' did not finish */
	if (!ts->run->dry_run)
		ts->log_id = insert_log(ts->run, ts->relid, "running", NULL, (int64) estimate);

	/*
	 * A dry run's row test counts the held rows; a sweep's first batch (or
	 * fast path) looks for holds itself, under the lock that keeps new ones
	 * out until it commits.
	 */
	ts->has_holds = ts->run->dry_run &&
		retention_table_has_holds(ts->relid, ts->run->cutoff, true);
}

typedef struct TableFinish
{
	SweepRun   *run;
	Oid			relid;
	int64		log_id;
	SweepCounts *counts;
	ErrorData  *edata;
	List	   *plans;			/* of LeafPlan: the marks due */
} TableFinish;

/* the table's sweep_log row, final, and its audit row */
static void
table_finish_step(void *arg)
{
	TableFinish *tf = (TableFinish *) arg;
	SweepCounts *c = tf->counts;
	const char *status = tf->edata ? "failed" : "done";
	ListCell   *lc;

	/* the marks of the leaves swept to the end */
	foreach(lc, tf->plans)
	{
		LeafPlan   *lp = (LeafPlan *) lfirst(lc);
		MarkWrite	mw = {tf->run, tf->relid, lp, lp->has_marketing};

		if (lp->mark_due)
			mark_write_step(&mw);
	}

	/* one statement: the row final, and the audit entry */
	run_saved_nulls("WITH final AS (UPDATE retention.sweep_log SET status = $2, phase = NULL, "
				  "finished_at = clock_timestamp(), rows_anonymized = $3, rows_deleted = $4, "
				  "rows_held = $5, rows_skipped = $6, partitions_truncated = $7, "
				  "rows_scanned = greatest(rows_scanned, $8), error = $9, "
				  "paused = $10 * interval '1 microsecond' WHERE id = $1) "
				  "SELECT retention._audit('sweep', $11, "
				  "jsonb_build_object('run', $12, 'cutoff', $13, 'anonymized', $3, 'deleted', $4, "
				  "'held', $5, 'skipped', $6, 'status', $2))",
				  13, (Oid[]) {INT8OID, TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID, INT4OID, INT8OID, TEXTOID, INT8OID,
					  TEXTOID, INT8OID, TIMESTAMPTZOID},
				  (Datum[]) {Int64GetDatum(tf->log_id), CStringGetTextDatum(status),
					  Int64GetDatum(c->anonymized), Int64GetDatum(c->deleted),
					  Int64GetDatum(c->held), Int64GetDatum(c->skipped),
					  Int32GetDatum(c->truncated), Int64GetDatum(c->scanned),
					  tf->edata ? CStringGetTextDatum(tf->edata->message) : (Datum) 0,
					  Int64GetDatum(c->paused_us),
					  CStringGetTextDatum(qualified_name(tf->relid)), Int64GetDatum(tf->run->run_id),
				  TimestampTzGetDatum(tf->run->cutoff)},
				  tf->edata ? "             " : "        n    ",
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
			sweep_commit_ext(run, true);
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
			foreach(lc, ts.plans)
			{
				edata = sweep_leaf(run, relid, (LeafPlan *) lfirst(lc), ts.has_holds, ts.log_id,
								   &counts);
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
			TableFinish tf = {run, relid, ts.log_id, &counts, edata, ts.plans};

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
		sweep_commit_ext(run, true);
	}
	PG_FINALLY();
	{
		/* also when cancelled: a session lock would outlive the error */
		unlock_table(run, relid);
	}
	PG_END_TRY();
}

/* -------------------------------------------------------------------------
 * Rows stored as written
 * -------------------------------------------------------------------------
 */

typedef struct AsWritten
{
	Oid			relid;
	Oid			root;
} AsWritten;

static void
as_written_step(void *arg)
{
	AsWritten  *aw = (AsWritten *) arg;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	run_sql("INSERT INTO retention.sweep_mark AS m (relid, root, requested_at, reason) "
			"VALUES ($1::pg_catalog.regclass, $2::pg_catalog.regclass, pg_catalog.clock_timestamp(), "
			"'rows stored as written (session_replication_role replica)') "
			"ON CONFLICT (relid) DO UPDATE SET requested_at = excluded.requested_at, reason = excluded.reason",
			2, (Oid[]) {OIDOID, OIDOID},
			(Datum[]) {ObjectIdGetDatum(aw->relid), ObjectIdGetDatum(aw->root)}, SPI_OK_INSERT);
	SPI_finish();
}

/*
 * Rows of leaf relid (of protected table root) are being stored as they
 * were written, by a session in replica mode (trigger.c): they may be due
 * already, below the leaf's mark.  Its next sweep is a full pass: asked
 * for once per transaction and relation, as the extension's owner.  A
 * database still at 1.0 has no marks: nothing to ask.
 */
void
retention_sweep_note_as_written(Oid relid, Oid root)
{
	static TransactionId noted_xid = InvalidTransactionId;
	static Oid	noted_relid = InvalidOid;
	AsWritten	aw = {relid, root};
	ErrorData  *edata;

	/* the note writes: from then on the transaction has an id */
	if (TransactionIdIsValid(noted_xid) && GetTopTransactionIdIfAny() == noted_xid &&
		relid == noted_relid)
		return;
	if (!OidIsValid(get_relname_relid("sweep_mark", retention_schema_oid(false))))
		return;
	edata = retention_run_as(retention_extension_owner(), as_written_step, &aw);
	if (edata != NULL)
		ReThrowError(edata);
	noted_xid = GetTopTransactionIdIfAny();
	noted_relid = relid;
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
	Datum		d;
	ArrayType  *arr;
	Datum	   *oids;
	int			n;
	int			i;
	/* a bound, not an expression: the index on started_at finds them */
	Interval	keep = {0, 0, retention_log_keep};

	/*
	 * One statement: who sweeps (the role in effect: SET ROLE's, the
	 * worker's retention_sweeper), whether the database is still at 1.0
	 * (it then locks as 1.0 does, too), the tables, and the log pruned
	 * of what is older than retention.log_keep months.
	 */
	run_saved("WITH pruned AS (DELETE FROM retention.sweep_log WHERE $3 AND started_at < $4) "
			"SELECT pg_catalog.nextval('retention.sweep_run_seq'), "
			"$1 || coalesce(' (' || nullif(pg_catalog.current_setting('application_name'), '') || ')', ''), "
			"(SELECT e.extversion = '1.0' FROM pg_catalog.pg_extension e WHERE e.extname = 'retention'), "
			"ARRAY(SELECT relid::oid FROM retention.protected_table "
			"WHERE $2 = 0 OR relid::oid = $2 ORDER BY relid::oid)",
			4, (Oid[]) {TEXTOID, OIDOID, BOOLOID, TIMESTAMPTZOID},
			(Datum[]) {CStringGetTextDatum(GetUserNameFromId(GetOuterUserId(), false)),
				ObjectIdGetDatum(rs->relid), BoolGetDatum(!run->dry_run),
			DirectFunctionCall2(timestamptz_mi_interval,
								TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
								IntervalPGetDatum(&keep))},
			SPI_OK_SELECT);
	run->run_id = DatumGetInt64(first_value(&isnull));
	run->run_by = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	run->legacy_locks = !isnull && DatumGetBool(d);
	run->marks = !run->legacy_locks;
	arr = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	deconstruct_array(arr, OIDOID, sizeof(Oid), true, TYPALIGN_INT, &oids, NULL, &n);
	if (OidIsValid(rs->relid) && n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("table \"%s\" is not protected", get_rel_name(rs->relid)),
				 errhint("Protect it first with retention.protect().")));
	for (i = 0; i < n; i++)
		rs->tables = lappend_oid(rs->tables, DatumGetObjectId(oids[i]));
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
	RetentionDecision decision = {0, true, InvalidOid, InvalidOid, NULL};

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
	/* committed with the first table's start (its 'running' row) */
	run_as_owner(&run, run_start_step, &start);
	tables = start.tables;

	/* every statement of the run decides as of its cutoff, counted by it */
	decision.moment = run.cutoff;
	retention_decision_push(&decision);
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
		retention_decision_pop(&decision);
		pace_active = false;
		pace_paused_us = 0;
		generic_plans = false;
		keep_batch_plans = false;
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
	Datum	   *values;
	bool	   *isnull;
	uint64		due;
	bool		fully_due;

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

	(void) expiry_row_from_args(fcinfo, t, &row, &values, &isnull);

	/* a sweep batch asks for the consent (NULL) and the hold (-1) to be looked up */
	if (PG_ARGISNULL(3))
		expiry_lookup_row(t, values, isnull, &row, false, expiry_has_consents(t));
	else
		row.consent = PG_GETARG_BOOL(3);

	retention_cutoffs(retention_decision()->moment != 0 ? retention_decision()->moment :
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
