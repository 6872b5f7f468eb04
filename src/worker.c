/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background worker (SPEC 3.9): a launcher that keeps the schedule,
 *	  and short-lived sweepers that sweep one database each.
 *
 * The launcher is registered by _PG_init when the library is preloaded.  It
 * connects to no database (it reads only the shared catalog pg_database),
 * so it never stands in the way of DROP DATABASE, and it never exits on its
 * own: after a crash or a termination the postmaster starts it again.  When
 * a sweep is due it starts, for one database at a time, a dynamic
 * background worker (never restarted) that connects to that database, exits
 * at once if the extension is not installed there, runs
 * CALL retention.sweep() the way a client's CALL runs (at top level, so the
 * procedure commits batch by batch), vacuums the tables that sweeps changed,
 * and exits.
 *
 * Scheduling.  Sweeps run nightly at retention.sweep_at in the server's
 * TimeZone, or every retention.sweep_interval seconds when that is set.
 * A database needs a sweep for the scheduled instant S when one of its
 * protected tables has no finished sweep (sweep_log status done or failed)
 * started at or after S, or when the last sweep of one was cut short; the
 * sweeper asks the database (retention._sweep_due), so manual sweeps count
 * and a sweep cut short by a crash does not.  When the launcher starts
 * (server start, restart after a crash) or is enabled again, it asks every
 * database about the latest scheduled instant: that is the catch-up of a
 * sweep missed while the server was down or cut short.
 *
 * What is due in a table is not decided here: that is sweep.c and expiry.c.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "parser/analyze.h"
#include "pgstat.h"
#include "pgtime.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/pmsignal.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "retention.h"

#define LAUNCHER_NAME		"retention launcher"
#define SWEEPER_NAME		"retention sweeper"

/* seconds before the postmaster starts a launcher that exited again */
#define LAUNCHER_RESTART_SECS	5

/* seconds between attempts to start a sweeper when no slot was free */
#define SLOT_RETRY_SECS		10

/* at most one WARNING per this many seconds about missing slots */
#define SLOT_WARNING_SECS	60

/*
 * The launcher never sleeps longer than this: it bounds the effect of a
 * wall clock that jumps, since schedules are in wall-clock time.
 */
#define MAX_NAP_MS			60000

/* how long a sweeper's VACUUM waits for its table's lock */
#define VACUUM_LOCK_TIMEOUT	"5s"

PGDLLEXPORT void retention_launcher_main(Datum main_arg);
PGDLLEXPORT void retention_sweeper_main(Datum main_arg);

/* what the launcher tells a sweeper, in bgw_extra */
typedef struct SweeperArgs
{
	TimestampTz since;			/* the scheduled instant this sweep is for */
	bool		catchup;		/* the launcher's first look after a start */
} SweeperArgs;

StaticAssertDecl(sizeof(SweeperArgs) <= BGW_EXTRALEN,
				 "SweeperArgs must fit in bgw_extra");

/* a database the launcher has to visit */
typedef struct LauncherDatabase
{
	Oid			oid;
	NameData	name;
} LauncherDatabase;

/* -------------------------------------------------------------------------
 * Registration
 * -------------------------------------------------------------------------
 */

/* called by _PG_init while shared_preload_libraries are loaded */
void
retention_worker_register(void)
{
	BackgroundWorker worker;

	/* pg_upgrade's server must not change anything */
	if (IsBinaryUpgrade)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = LAUNCHER_RESTART_SECS;
	strlcpy(worker.bgw_library_name, "retention", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "retention_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, LAUNCHER_NAME, BGW_MAXLEN);
	strlcpy(worker.bgw_type, LAUNCHER_NAME, BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* -------------------------------------------------------------------------
 * The schedule
 * -------------------------------------------------------------------------
 */

/* minutes after midnight of retention.sweep_at (checked when set) */
static int
sweep_at_minutes(void)
{
	int			minutes;

	if (!retention_parse_sweep_at(retention_sweep_at, &minutes))
		minutes = 3 * 60;
	return minutes;
}

/*
 * The instant at which the server's TimeZone reads "minutes after midnight"
 * on the day of ref, shifted by dayshift days.  A time of day skipped or
 * repeated by a daylight-saving change still gives one instant a day.
 */
static TimestampTz
local_time_of_day(TimestampTz ref, int dayshift, int minutes)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tz;
	int			jd;
	TimestampTz result;

	if (timestamp2tm(ref, &tz, &tm, &fsec, NULL, session_timezone) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	jd = date2j(tm.tm_year, tm.tm_mon, tm.tm_mday) + dayshift;
	j2date(jd, &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
	tm.tm_hour = minutes / 60;
	tm.tm_min = minutes % 60;
	tm.tm_sec = 0;
	tz = DetermineTimeZoneOffset(&tm, session_timezone);
	if (tm2timestamp(&tm, 0, &tz, &result) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return result;
}

/* the latest scheduled instant at or before now: what a catch-up is for */
static TimestampTz
schedule_previous(TimestampTz now)
{
	TimestampTz t;

	if (retention_sweep_interval > 0)
		return now - (TimestampTz) retention_sweep_interval * USECS_PER_SEC;
	t = local_time_of_day(now, 0, sweep_at_minutes());
	if (t > now)
		t = local_time_of_day(now, -1, sweep_at_minutes());
	return t;
}

/* the first scheduled instant after "after" */
static TimestampTz
schedule_next(TimestampTz after)
{
	TimestampTz t;

	if (retention_sweep_interval > 0)
		return after + (TimestampTz) retention_sweep_interval * USECS_PER_SEC;
	t = local_time_of_day(after, 0, sweep_at_minutes());
	if (t <= after)
		t = local_time_of_day(after, 1, sweep_at_minutes());
	return t;
}

/* -------------------------------------------------------------------------
 * The launcher
 * -------------------------------------------------------------------------
 */

/* the launcher's state, for the life of the process */
static MemoryContext launcher_loop_context = NULL;
static MemoryContext launcher_round_context = NULL;
static TimestampTz next_round = 0;	/* the next scheduled instant */
static TimestampTz last_round = 0;	/* when the last round started */
static bool catchup_pending = false;
static List *pending_databases = NIL;	/* of this round, still to sweep */
static SweeperArgs round_args;
static BackgroundWorkerHandle *sweeper = NULL;
static bool sweeper_stopping = false;
static NameData sweeper_database;
static TimestampTz slot_retry_at = 0;
static TimestampTz slot_warned_at = 0;
static bool missing_warned = false;
static uint32 launcher_wait_event = 0;

/* the settings the schedule was computed from */
static bool sched_enabled;
static int	sched_minutes;
static int	sched_interval;
static char sched_zone[TZ_STRLEN_MAX + 1];

/*
 * Whether retention.databases lets the worker sweep datname.  The list has
 * the syntax of an identifier list (checked when set): unquoted names are
 * folded to lower case.
 */
static bool
database_listed(const char *datname)
{
	char	   *raw;
	List	   *names;
	ListCell   *lc;
	bool		found = false;

	if (retention_databases == NULL || retention_databases[0] == '\0')
		return true;
	raw = pstrdup(retention_databases);
	if (SplitIdentifierString(raw, ',', &names))
	{
		foreach(lc, names)
		{
			if (strcmp((char *) lfirst(lc), datname) == 0)
				found = true;
		}
	}
	list_free(names);
	pfree(raw);
	return found;
}

/* a database the worker may connect to and sweep */
static bool
database_sweepable(Form_pg_database db)
{
	return db->datallowconn && !db->datistemplate &&
		db->datconnlimit != DATCONNLIMIT_INVALID_DB;
}

/* warn once per configuration about names in retention.databases that do not match */
static void
warn_missing_databases(List *found)
{
	char	   *raw;
	List	   *names;
	ListCell   *lc;

	if (missing_warned || retention_databases == NULL || retention_databases[0] == '\0')
		return;
	missing_warned = true;
	raw = pstrdup(retention_databases);
	if (SplitIdentifierString(raw, ',', &names))
	{
		foreach(lc, names)
		{
			const char *name = (const char *) lfirst(lc);
			ListCell   *lc2;
			bool		seen = false;

			foreach(lc2, found)
			{
				if (strcmp(NameStr(((LauncherDatabase *) lfirst(lc2))->name), name) == 0)
					seen = true;
			}
			if (!seen)
				ereport(WARNING,
						(errcode(ERRCODE_UNDEFINED_DATABASE),
						 errmsg("database \"%s\" in retention.databases cannot be swept", name),
						 errdetail("It does not exist, is a template or does not allow connections.")));
		}
	}
	list_free(names);
	pfree(raw);
}

/*
 * The databases to sweep, from pg_database, allocated in cxt.  Read the way
 * the logical replication launcher reads pg_subscription: a catalog scan in
 * a short transaction, without a database.
 */
static List *
launcher_databases(MemoryContext cxt)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	MemoryContext txncxt;
	List	   *result = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	txncxt = CurrentMemoryContext;
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		LauncherDatabase *entry;

		if (!database_sweepable(db) || !database_listed(NameStr(db->datname)))
			continue;
		/* the entry and the list outlive the transaction */
		MemoryContextSwitchTo(cxt);
		entry = palloc(sizeof(LauncherDatabase));
		entry->oid = db->oid;
		namestrcpy(&entry->name, NameStr(db->datname));
		result = lappend(result, entry);
		MemoryContextSwitchTo(txncxt);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(oldcxt);

	warn_missing_databases(result);
	return result;
}

/* whether the database is still there, and still to be swept */
static bool
database_still_sweepable(Oid dboid)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	HeapTuple	tup;
	bool		result = false;

	StartTransactionCommand();
	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		result = database_sweepable(db) && database_listed(NameStr(db->datname));
		ReleaseSysCache(tup);
	}
	CommitTransactionCommand();
	MemoryContextSwitchTo(oldcxt);
	return result;
}

/* the settings the schedule depends on, remembered to notice changes */
static bool
launcher_remember_schedule(void)
{
	const char *zone = pg_get_timezone_name(session_timezone);
	bool		changed;

	changed = sched_minutes != sweep_at_minutes() ||
		sched_interval != retention_sweep_interval ||
		strcmp(sched_zone, zone ? zone : "") != 0;
	sched_minutes = sweep_at_minutes();
	sched_interval = retention_sweep_interval;
	strlcpy(sched_zone, zone ? zone : "", sizeof(sched_zone));
	return changed;
}

/* say in the log when sweeps run, and in which time zone */
static void
launcher_log_schedule(bool started)
{
	TimestampTz next = next_round;	/* scheduled; a catch-up may come first */
	char	   *detail;

	if (!retention_enabled)
		detail = pstrdup(_("Sweeps are paused: retention.enabled is off."));
	else if (retention_sweep_interval > 0)
		detail = psprintf(_("Databases are swept every %d s (retention.sweep_interval); the next sweep is at %s."),
						  retention_sweep_interval, timestamptz_to_str(next));
	else
		detail = psprintf(_("Databases are swept nightly at %s in time zone \"%s\"; the next sweep is at %s."),
						  retention_sweep_at, sched_zone, timestamptz_to_str(next));
	if (started)
		ereport(LOG,
				(errmsg("retention launcher started"),
				 errdetail_internal("%s", detail)));
	else
		ereport(LOG,
				(errmsg("retention launcher reloaded its configuration"),
				 errdetail_internal("%s", detail)));
	pfree(detail);

	/*
	 * Timestamp-without-time-zone columns are read in retention.timezone,
	 * else in log_timezone (expiry.c): say so when that is not the zone of
	 * postgresql.conf's TimeZone, which the launcher, connected to no
	 * database, has as it is.
	 */
	if ((retention_timezone == NULL || retention_timezone[0] == '\0') &&
		pg_strcasecmp(pg_get_timezone_name(log_timezone),
					  pg_get_timezone_name(session_timezone)) != 0)
		ereport(WARNING,
				(errmsg("retention reads timestamp columns in log_timezone \"%s\", not in TimeZone \"%s\"",
						pg_get_timezone_name(log_timezone), pg_get_timezone_name(session_timezone)),
				 errdetail("retention.timezone is empty."),
				 errhint("Set retention.timezone to the zone in which writers fill timestamp-without-time-zone columns.")));
}

/* SIGHUP: reload, and reschedule if the schedule changed */
static void
launcher_reload(TimestampTz now)
{
	bool		was_enabled = sched_enabled;

	ProcessConfigFile(PGC_SIGHUP);
	missing_warned = false;
	sched_enabled = retention_enabled;

	/* turned on again: catch up what was missed while it was off */
	if (retention_enabled && !was_enabled)
		catchup_pending = true;

	/*
	 * A new time of day or zone applies from now on (no sweep at once); a
	 * new interval counts from the last sweep.
	 */
	if (launcher_remember_schedule())
		next_round = retention_sweep_interval > 0 ?
			schedule_next(last_round) : schedule_next(now);
	launcher_log_schedule(false);
}

/* begin a round of all databases */
static void
launcher_start_round(TimestampTz now, bool catchup)
{
	MemoryContextReset(launcher_round_context);
	pending_databases = launcher_databases(launcher_round_context);
	round_args.catchup = catchup;
	round_args.since = catchup ? schedule_previous(now) : next_round;
	last_round = now;
	next_round = schedule_next(now);
	catchup_pending = false;
	slot_retry_at = 0;
	elog(DEBUG1, "retention launcher starts a %s round of %d databases for the sweep of %s",
		 catchup ? "catch-up" : "scheduled", list_length(pending_databases),
		 timestamptz_to_str(round_args.since));
}

/* start the sweeper of the next database of the round, if a slot is free */
static void
launcher_start_sweeper(TimestampTz now)
{
	LauncherDatabase *db = (LauncherDatabase *) linitial(pending_databases);
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	MemoryContext oldcxt;
	bool		started;

	if (!database_still_sweepable(db->oid))
	{
		pending_databases = list_delete_first(pending_databases);
		return;
	}

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, MyBgworkerEntry->bgw_library_name, BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "retention_sweeper_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s of database \"%s\"", SWEEPER_NAME,
			 NameStr(db->name));
	strlcpy(worker.bgw_type, SWEEPER_NAME, BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(db->oid);
	memcpy(worker.bgw_extra, &round_args, sizeof(round_args));
	worker.bgw_notify_pid = MyProcPid;

	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	started = RegisterDynamicBackgroundWorker(&worker, &handle);
	MemoryContextSwitchTo(oldcxt);

	if (!started)
	{
		int			retry = SLOT_RETRY_SECS;
		bool		warn;

		if (retention_sweep_interval > 0 && retention_sweep_interval < retry)
			retry = retention_sweep_interval;
		slot_retry_at = now + (TimestampTz) retry * USECS_PER_SEC;
		/* a WARNING now and then; the attempts in between at DEBUG1 */
		warn = slot_warned_at == 0 ||
			now - slot_warned_at >= (TimestampTz) SLOT_WARNING_SECS * USECS_PER_SEC;
		if (warn)
			slot_warned_at = now;
		ereport(warn ? WARNING : DEBUG1,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the retention sweeper of database \"%s\"",
						NameStr(db->name)),
				 errdetail("All background worker slots are in use (max_worker_processes is %d).",
						   max_worker_processes),
				 errhint("Raise max_worker_processes; the launcher tries again every %d s.",
						 retry)));
		return;
	}
	if (slot_warned_at != 0)
	{
		ereport(LOG,
				(errmsg("started the retention sweeper of database \"%s\" after waiting for a free slot",
						NameStr(db->name))));
		slot_warned_at = 0;
	}
	sweeper = handle;
	sweeper_stopping = false;
	sweeper_database = db->name;
	pending_databases = list_delete_first(pending_databases);
}

/* forget the sweeper once it has exited */
static void
launcher_check_sweeper(void)
{
	pid_t		pid;

	if (sweeper == NULL)
		return;
	if (GetBackgroundWorkerPid(sweeper, &pid) == BGWH_STOPPED)
	{
		pfree(sweeper);
		sweeper = NULL;
		sweeper_stopping = false;
	}
}

/* the launcher's sweeper does not outlive it */
static void
launcher_exit(int code, Datum arg)
{
	if (sweeper != NULL)
	{
		/* an ERROR may have left a lock held; the exit releases them anyway */
		LWLockReleaseAll();
		TerminateBackgroundWorker(sweeper);
	}
}

/* how long to sleep, in milliseconds, until there is something to do */
static long
launcher_nap(TimestampTz now)
{
	TimestampTz wake;

	if (!retention_enabled || sweeper != NULL)
		return MAX_NAP_MS;		/* the latch says when the sweeper exits */
	if (catchup_pending)
		return 0;
	wake = pending_databases != NIL ? slot_retry_at : next_round;
	if (wake <= now)
		return 0;
	return (long) Min((wake - now + 999) / 1000, (TimestampTz) MAX_NAP_MS);
}

void
retention_launcher_main(Datum main_arg)
{
	TimestampTz now;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	/* nothing to cancel: the launcher runs no queries */
	pqsignal(SIGINT, SIG_IGN);
	BackgroundWorkerUnblockSignals();

	/* shared catalogs only: no database to hold on to */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname(LAUNCHER_NAME);
	before_shmem_exit(launcher_exit, (Datum) 0);
	launcher_wait_event = RETENTION_WAIT_EVENT("RetentionLauncherMain");

	launcher_loop_context = AllocSetContextCreate(TopMemoryContext,
												  "retention launcher loop",
												  ALLOCSET_DEFAULT_SIZES);
	launcher_round_context = AllocSetContextCreate(TopMemoryContext,
												   "retention launcher round",
												   ALLOCSET_DEFAULT_SIZES);

	now = GetCurrentTimestamp();
	sched_enabled = retention_enabled;
	(void) launcher_remember_schedule();
	last_round = now;
	next_round = schedule_next(now);
	/* a sweep missed while the server was down, or cut short by a crash */
	catchup_pending = retention_enabled;
	launcher_log_schedule(true);

	for (;;)
	{
		MemoryContextSwitchTo(launcher_loop_context);
		MemoryContextReset(launcher_loop_context);

		CHECK_FOR_INTERRUPTS();
		now = GetCurrentTimestamp();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			launcher_reload(now);
		}

		launcher_check_sweeper();
		if (!retention_enabled)
		{
			/* paused: nothing new starts, and the sweep in progress stops */
			pending_databases = NIL;
			if (sweeper != NULL && !sweeper_stopping)
			{
				ereport(LOG,
						(errmsg("stopping the retention sweeper of database \"%s\"",
								NameStr(sweeper_database)),
						 errdetail("retention.enabled is off.")));
				TerminateBackgroundWorker(sweeper);
				sweeper_stopping = true;
			}
		}
		else if (sweeper == NULL)
		{
			if (pending_databases == NIL && (catchup_pending || now >= next_round))
				launcher_start_round(now, catchup_pending);
			if (pending_databases != NIL && now >= slot_retry_at)
				launcher_start_sweeper(now);
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 launcher_nap(now), launcher_wait_event);
		ResetLatch(MyLatch);
	}
}

/* -------------------------------------------------------------------------
 * The sweeper
 * -------------------------------------------------------------------------
 */

/*
 * Run one SQL statement as a client's simple query runs it: parsed,
 * planned and run in a portal at top level, so that a procedure may commit
 * (CALL) and a utility that runs its own transactions may (VACUUM).  The
 * caller has started a transaction command; on return the current
 * transaction may be another one than at the call.  Modelled on
 * exec_simple_query(), as pg_cron's background-worker mode does.
 */
static void
run_toplevel(const char *sql, MemoryContext parsecxt)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(parsecxt);
	List	   *parsetrees = pg_parse_query(sql);
	RawStmt    *parsetree;
	CommandTag	tag;
	List	   *querytrees;
	List	   *plantrees;
	bool		snapshot_set = false;
	Portal		portal;
	DestReceiver *receiver;
	QueryCompletion qc;

	if (list_length(parsetrees) != 1)
		elog(ERROR, "expected one statement in \"%s\"", sql);
	parsetree = linitial_node(RawStmt, parsetrees);
	tag = CreateCommandTag(parsetree->stmt);

	if (analyze_requires_snapshot(parsetree))
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		snapshot_set = true;
	}
	/* in parsecxt: the trees must survive the commits inside the portal */
	querytrees = pg_analyze_and_rewrite_fixedparams(parsetree, sql, NULL, 0, NULL);
	plantrees = pg_plan_queries(querytrees, sql, CURSOR_OPT_PARALLEL_OK, NULL);
	if (snapshot_set)
		PopActiveSnapshot();
	CHECK_FOR_INTERRUPTS();

	portal = CreatePortal("", true, true);
	portal->visible = false;
	PortalDefineQuery(portal, NULL, sql, tag, plantrees, NULL);
	PortalStart(portal, NULL, 0, InvalidSnapshot);
	receiver = CreateDestReceiver(DestNone);
	MemoryContextSwitchTo(oldcxt);

	(void) retention_PortalRun(portal, FETCH_ALL, true, receiver, receiver, &qc);

	receiver->rDestroy(receiver);
	PortalDrop(portal, false);
}

/*
 * Run sql at top level in transactions of its own; returns false, after a
 * WARNING, if it raised an error (a cancel included).  A termination
 * (SIGTERM) is FATAL and never returns: the transaction in flight rolls back.
 */
static bool
sweeper_run(const char *sql)
{
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext parsecxt = AllocSetContextCreate(TopMemoryContext,
												   "retention sweeper statement",
												   ALLOCSET_DEFAULT_SIZES);
	volatile bool ok = true;

	SetCurrentStatementStartTimestamp();
	debug_query_string = sql;
	pgstat_report_activity(STATE_RUNNING, sql);
	StartTransactionCommand();
	PG_TRY();
	{
		run_toplevel(sql, parsecxt);
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg_internal("%s", edata->message),
				 /* a detail may quote a row: never in the server log */
				 edata->detail ? errdetail("The error's detail is not shown: it may quote personal data.") : 0,
				 errcontext("retention sweeper running \"%s\"", sql)));
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	MemoryContextDelete(parsecxt);
	debug_query_string = NULL;
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

/* begin and end a short transaction that queries through SPI */
static void
sweeper_spi_begin(const char *what)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, what);
}

static void
sweeper_spi_end(MemoryContext cxt)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * The role sweeps run as: retention_sweeper, a role that cannot log in and
 * may only call the sweep (a bgworker cannot connect as a NOLOGIN role
 * before PostgreSQL 17, so the sweeper connects as the bootstrap superuser
 * and sets its role for the CALL, as SET ROLE does).  The sweep does its own catalog
 * work as the extension's owner and the batches on a table as the table's
 * owner, restricted (sweep.c): the role only names who swept, in
 * sweep_log.run_by and pg_stat_activity, and holds no other right.  In a
 * database still at 1.0, where it may not call the sweep, sweeps run as
 * the superuser, as 1.0's did.  VACUUM, which only a table's owner or a
 * superuser may run, runs as the superuser (it runs the owner's code as
 * the owner itself).
 */
#define SWEEPER_ROLE		"retention_sweeper"

static bool
sweeper_role_usable(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	const char *sql = "SELECT pg_catalog.has_function_privilege(r.oid, "
		"'retention.sweep(pg_catalog.regclass, integer, boolean)'::pg_catalog.regprocedure, 'EXECUTE') "
		"FROM pg_catalog.pg_roles r WHERE r.rolname = '" SWEEPER_ROLE "'";
	bool		isnull;
	bool		ok = false;

	sweeper_spi_begin(sql);
	if (SPI_execute(sql, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
		ok = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	sweeper_spi_end(cxt);
	return ok;
}

/* become role (NULL: the superuser the sweeper connected as again) */
static void
sweeper_set_role(const char *role)
{
	StartTransactionCommand();
	SetConfigOption("role", role ? role : "none", PGC_SUSET, PGC_S_OVERRIDE);
	CommitTransactionCommand();
}

/* how many protected tables are due for the sweep scheduled at "since" */
static int64
sweeper_count_due(TimestampTz since)
{
	MemoryContext cxt = CurrentMemoryContext;
	const char *sql = "SELECT count(*) FROM retention._sweep_due($1)";
	bool		isnull;
	int64		n;

	sweeper_spi_begin(sql);
	if (SPI_execute_with_args(sql, 1, (Oid[]) {TIMESTAMPTZOID},
							  (Datum[]) {TimestampTzGetDatum(since)}, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not count the tables due for a sweep");
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	sweeper_spi_end(cxt);
	return n;
}

/* a table whose sweeps changed rows that no VACUUM has removed yet */
typedef struct PendingVacuum
{
	Oid			relid;
	int64		last_log_id;	/* the newest sweep_log row it settles */
	char	   *name;			/* schema-qualified, quoted */
} PendingVacuum;

static List *
sweeper_pending_vacuums(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	const char *sql = "SELECT relid::oid, last_log_id FROM retention._vacuum_pending()";
	List	   *result = NIL;
	uint64		i;

	sweeper_spi_begin(sql);
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list the tables to vacuum");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		char	   *relname = get_rel_name(relid);
		char	   *nspname = get_namespace_name(get_rel_namespace(relid));
		MemoryContext spicxt;
		PendingVacuum *pv;

		if (relname == NULL || nspname == NULL)
			continue;			/* dropped meanwhile */
		/* the entry and the list outlive SPI and the transaction */
		spicxt = MemoryContextSwitchTo(cxt);
		pv = palloc(sizeof(PendingVacuum));
		pv->relid = relid;
		pv->last_log_id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		pv->name = pstrdup(quote_qualified_identifier(nspname, relname));
		result = lappend(result, pv);
		MemoryContextSwitchTo(spicxt);
	}
	sweeper_spi_end(cxt);
	return result;
}

static void
sweeper_mark_vacuumed(PendingVacuum *pv)
{
	MemoryContext cxt = CurrentMemoryContext;
	const char *sql = "SELECT retention._vacuumed($1, $2)";

	sweeper_spi_begin(sql);
	if (SPI_execute_with_args(sql, 2, (Oid[]) {OIDOID, INT8OID},
							  (Datum[]) {ObjectIdGetDatum(pv->relid), Int64GetDatum(pv->last_log_id)},
							  NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record the vacuum of \"%s\"", pv->name);
	sweeper_spi_end(cxt);
}

/*
 * Vacuum every table whose sweeps (this one's, or earlier ones, or a manual
 * CALL's) removed or changed rows, so that the old values do not live on in
 * dead row versions, nor in index entries: INDEX_CLEANUP ON keeps VACUUM
 * from skipping the indexes when few rows are dead.  Returns how many were
 * vacuumed; a table whose VACUUM fails (a lock not granted in time) stays
 * pending for the next sweeper.
 */
static int
sweeper_vacuum(void)
{
	List	   *pending;
	ListCell   *lc;
	int			done = 0;

	pending = sweeper_pending_vacuums();
	if (pending == NIL)
		return 0;
	SetConfigOption("lock_timeout", VACUUM_LOCK_TIMEOUT, PGC_SUSET, PGC_S_SESSION);
	foreach(lc, pending)
	{
		PendingVacuum *pv = (PendingVacuum *) lfirst(lc);
		char	   *sql = psprintf("VACUUM (INDEX_CLEANUP ON) %s", pv->name);

		if (!PostmasterIsAlive())
			proc_exit(1);
		if (sweeper_run(sql))
		{
			sweeper_mark_vacuumed(pv);
			elog(DEBUG1, "retention sweeper vacuumed %s", pv->name);
			done++;
		}
		pfree(sql);
	}
	return done;
}

void
retention_sweeper_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	SweeperArgs args;
	MemoryContext cxt;
	char	   *dbname;
	bool		installed;
	int64		due;
	TimestampTz start;
	int			vacuumed;
	bool		as_sweeper;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	/* sweep_log.run_by and pg_stat_activity say who swept */
	SetConfigOption("application_name", SWEEPER_NAME, PGC_USERSET, PGC_S_OVERRIDE);

	/*
	 * The sweep anonymizes through retention's triggers: a database set to
	 * session_replication_role = replica (a logical replication target, say)
	 * must not turn them off.
	 */
	SetConfigOption("session_replication_role", "origin", PGC_SUSET, PGC_S_OVERRIDE);

	cxt = AllocSetContextCreate(TopMemoryContext, "retention sweeper", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(cxt);

	StartTransactionCommand();
	installed = OidIsValid(get_extension_oid("retention", true));
	dbname = MemoryContextStrdup(cxt, get_database_name(MyDatabaseId));
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	if (!installed)
	{
		elog(DEBUG1, "extension retention is not installed in database \"%s\": nothing to sweep",
			 dbname);
		proc_exit(0);
	}

	start = GetCurrentTimestamp();
	due = sweeper_count_due(args.since);
	as_sweeper = due > 0 && sweeper_role_usable();
	if (due > 0)
	{
		/* a catch-up is news; a scheduled sweep is logged when it changed something */
		ereport(args.catchup ? LOG : DEBUG1,
				(errmsg("retention sweeper sweeping database \"%s\"", dbname),
				 errdetail_plural("%lld protected table was not swept to the end since %s.",
								  "%lld protected tables were not swept to the end since %s.",
								  (unsigned long) due,
								  (long long) due, timestamptz_to_str(args.since))));
		if (as_sweeper)
			sweeper_set_role(SWEEPER_ROLE);
		(void) sweeper_run("CALL retention.sweep()");
		if (as_sweeper)
			sweeper_set_role(NULL);

		/*
		 * The sweep's counts of dead rows reach the statistics before the
		 * VACUUM's, not after: autovacuum would vacuum again for nothing.
		 */
		pgstat_report_stat(true);
	}
	else
		elog(DEBUG1, "database \"%s\" is up to date for the retention sweep scheduled at %s",
			 dbname, timestamptz_to_str(args.since));

	if (!PostmasterIsAlive())
		proc_exit(1);
	vacuumed = sweeper_vacuum();

	if (due > 0 || vacuumed > 0)
	{
		long		secs;
		int			usecs;

		TimestampDifference(start, GetCurrentTimestamp(), &secs, &usecs);
		ereport((args.catchup && due > 0) || vacuumed > 0 ? LOG : DEBUG1,
				(errmsg("retention sweeper done in database \"%s\"", dbname),
				 errdetail("It took %ld.%03d s; tables vacuumed: %d.",
						   secs, usecs / 1000, vacuumed)));
	}
	proc_exit(0);
}
