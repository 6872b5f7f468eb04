/*-------------------------------------------------------------------------
 *
 * retention.c
 *	  The module's front door: _PG_init, configuration parameters and the
 *	  hooks that tie the other modules to the server.
 *
 * Everything the extension does at SQL level works without preloading the
 * library; with shared_preload_libraries = 'retention' the background
 * worker (worker.c) is registered as well.  This file holds no policy: it
 * only wires the parts together.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/retention.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/varlena.h"

#include "retention.h"

PG_MODULE_MAGIC;

/* configuration parameters, see docs/configuration.md */
bool		retention_enabled = true;
char	   *retention_sweep_at = NULL;
int			retention_sweep_interval = 0;
char	   *retention_databases = NULL;
int			retention_batch_size = 10000;
int			retention_log_keep = 13;
int			retention_lock_timeout = 100;
int			retention_batch_delay = 0;
int			retention_max_wal_rate = 0;
char	   *retention_timezone = NULL;

void		_PG_init(void);

/* "HH:MM" (or "H:MM") with 0 <= HH < 24, 0 <= MM < 60: digits only */
bool
retention_parse_sweep_at(const char *value, int *minutes)
{
	int			h = 0,
				m = 0;
	const char *p = value;

	if (value == NULL || !isdigit((unsigned char) p[0]))
		return false;
	h = *p++ - '0';
	if (isdigit((unsigned char) *p))
		h = h * 10 + (*p++ - '0');
	if (*p++ != ':' || !isdigit((unsigned char) p[0]) || !isdigit((unsigned char) p[1]) || p[2] != '\0')
		return false;
	m = (p[0] - '0') * 10 + (p[1] - '0');
	if (h > 23 || m > 59)
		return false;
	*minutes = h * 60 + m;
	return true;
}

static bool
check_sweep_at(char **newval, void **extra, GucSource source)
{
	int			minutes;

	if (!retention_parse_sweep_at(*newval, &minutes))
	{
		GUC_check_errdetail("retention.sweep_at must be a time of day as HH:MM, such as 03:00.");
		return false;
	}
	return true;
}

/* a list of database names, with the syntax of search_path */
static bool
check_databases(char **newval, void **extra, GucSource source)
{
	char	   *raw;
	List	   *names;
	bool		ok;

	raw = pstrdup(*newval ? *newval : "");
	ok = SplitIdentifierString(raw, ',', &names);
	list_free(names);
	pfree(raw);
	if (!ok)
	{
		GUC_check_errdetail("retention.databases must be a comma-separated list of database names; double-quote names with capitals, spaces or commas.");
		return false;
	}
	return true;
}

static bool
check_timezone(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (pg_tzset(*newval) == NULL)
	{
		GUC_check_errdetail("Time zone \"%s\" is not recognized.", *newval);
		return false;
	}
	return true;
}

static void
assign_timezone(const char *newval, void *extra)
{
	/* deadlines of timestamp-without-time-zone columns depend on it */
	retention_invalidate_all();
}

void
_PG_init(void)
{
	DefineCustomBoolVariable("retention.enabled",
							 "Whether the background worker sweeps protected tables.",
							 "Turning it off pauses the scheduled sweeps (a sweep in progress "
							 "stops); triggers and CALL retention.sweep() keep working.",
							 &retention_enabled,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("retention.sweep_at",
							   "Time of day (HH:MM, server time zone) of the nightly sweep.",
							   NULL,
							   &retention_sweep_at,
							   "03:00",
							   PGC_SIGHUP,
							   0,
							   check_sweep_at, NULL, NULL);

	DefineCustomIntVariable("retention.sweep_interval",
							"Sweep every this often instead of nightly (0: nightly at retention.sweep_at).",
							NULL,
							&retention_sweep_interval,
							0,
							0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("retention.databases",
							   "Comma-separated databases the worker sweeps (empty: every database with the extension).",
							   NULL,
							   &retention_databases,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   check_databases, NULL, NULL);

	DefineCustomIntVariable("retention.batch_size",
							"Rows per committed batch of a sweep.",
							NULL,
							&retention_batch_size,
							10000,
							1, 10000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("retention.log_keep",
							"Months of retention.sweep_log kept; older rows are pruned by each sweep.",
							NULL,
							&retention_log_keep,
							13,
							1, 1200,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("retention.lock_timeout",
							"How long a sweep waits for a row or partition lock before skipping it.",
							"Skipped rows are counted in retention.sweep_log and taken by the next sweep.",
							&retention_lock_timeout,
							100,
							1, 60000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("retention.batch_delay",
							"Pause between two batches of a sweep, to leave I/O to live traffic.",
							"0: none.  A sweep's WAL competes with the commits of live writers; a pause paces it.",
							&retention_batch_delay,
							0,
							0, 10000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("retention.max_wal_rate",
							"Most WAL a sweep writes per second (0: no limit).",
							"A sweep that reaches it pauses, row by row, as VACUUM does under "
							"vacuum_cost_delay: the commits of live writers then have less of its WAL to flush.",
							&retention_max_wal_rate,
							0,
							0, MAX_KILOBYTES,
							PGC_SUSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomStringVariable("retention.timezone",
							   "Time zone in which timestamp-without-time-zone columns of protected tables are read (empty: log_timezone).",
							   "No session, role, database or client setting changes the zone: it is set, as log_timezone is, "
							   "in postgresql.conf, by ALTER SYSTEM or on the server's command line.",
							   &retention_timezone,
							   "",
							   PGC_SIGHUP,
							   0,
							   check_timezone, assign_timezone, NULL);

	/* DROP EXTENSION retention while tables are protected */
	retention_drop_guard_init();

	MarkGUCPrefixReserved("retention");

	retention_catalog_init();

	/* the launcher can only be registered from shared_preload_libraries */
	if (process_shared_preload_libraries_in_progress)
		retention_worker_register();
}
