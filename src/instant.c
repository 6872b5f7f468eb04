/*-------------------------------------------------------------------------
 *
 * instant.c
 *	  The rules' clock: calendar arithmetic on instants in UTC, and the one
 *	  zone in which timestamp-without-time-zone columns are read.
 *
 * Every deadline, cutoff and bound of the rules (policy.c, expiry.c) is
 * computed with these, so that no TimeZone setting of a session, role,
 * database or client moves one.  Not here: what the deadlines are.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/instant.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "expiry.h"

static bool tz_valid = false;
static pg_tz *retention_tz = NULL;

/* the zone is read again after the configuration may have changed */
void
retention_zone_invalidate(void)
{
	tz_valid = false;
}

/*
 * Calendar arithmetic on instants, in UTC: a month or a day is the
 * calendar's, never 30 days nor the session's local day.  Every deadline,
 * cutoff and bound of the rules is computed with these two, so that no
 * TimeZone setting of a session, role, database or client moves them.
 * retention._window_within() (SQL) compares windows with ceilings in the
 * same arithmetic.
 */
TimestampTz
retention_instant_minus(TimestampTz t, const Interval *span)
{
	if (TIMESTAMP_NOT_FINITE(t))
		return t;
	/* a timestamptz is a UTC timestamp: timestamp arithmetic is UTC's */
	return DatumGetTimestamp(DirectFunctionCall2(timestamp_mi_interval,
												 TimestampGetDatum(t),
												 IntervalPGetDatum(span)));
}

TimestampTz
retention_instant_plus(TimestampTz t, const Interval *span)
{
	if (TIMESTAMP_NOT_FINITE(t))
		return t;
	return DatumGetTimestamp(DirectFunctionCall2(timestamp_pl_interval,
												 TimestampGetDatum(t),
												 IntervalPGetDatum(span)));
}

/*
 * t - span (t + span if plus), or if_out if that could fall outside the
 * range of timestamps.  The cutoffs use -infinity: a window too long to
 * compute keeps what its ceiling allows.  The range is checked beforehand,
 * with a bound on the span (a month at most 31 days), rather than by
 * catching timestamp arithmetic's error, which would need a subtransaction.
 */
TimestampTz
retention_instant_shift_or(TimestampTz t, const Interval *span, bool plus, TimestampTz if_out)
{
	double		bound;

	if (TIMESTAMP_NOT_FINITE(t))
		return t;
	bound = fabs((double) span->month) * 31.0 * USECS_PER_DAY +
		fabs((double) span->day) * (double) USECS_PER_DAY +
		fabs((double) span->time) + (double) USECS_PER_DAY;
	if ((double) t - bound <= (double) MIN_TIMESTAMP ||
		(double) t + bound >= (double) END_TIMESTAMP)
		return if_out;
	return plus ? retention_instant_plus(t, span) : retention_instant_minus(t, span);
}

/*
 * The zone in which timestamp-without-time-zone columns are read: one zone
 * for the whole server, whatever a session, role, database or client sets.
 * retention.timezone when set (PGC_SIGHUP: only postgresql.conf, ALTER
 * SYSTEM or the command line set it); else log_timezone, which is
 * PGC_SIGHUP too and which initdb sets to the same zone as TimeZone.  The
 * TimeZone setting itself cannot decide: ALTER DATABASE/ROLE ... SET,
 * PGOPTIONS and PGTZ change even its reset value.
 */
pg_tz *
retention_zone(void)
{
	if (retention_timezone == NULL || retention_timezone[0] == '\0')
		return log_timezone;
	if (!tz_valid)
	{
		retention_tz = pg_tzset(retention_timezone);
		if (retention_tz == NULL)
			retention_tz = log_timezone;	/* check_timezone refused it */
		tz_valid = true;
	}
	return retention_tz;
}

/* its name, for SQL that reads a timestamp column (AT TIME ZONE) */
const char *
retention_zone_name(void)
{
	return pg_get_timezone_name(retention_zone());
}

TimestampTz
retention_timestamp_to_tz(Timestamp ts)
{
	struct pg_tm tt;
	fsec_t		fsec;
	int			tz;
	TimestampTz result;

	if (TIMESTAMP_NOT_FINITE(ts))
		return ts;
	if (timestamp2tm(ts, NULL, &tt, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	tz = DetermineTimeZoneOffset(&tt, retention_zone());
	if (tm2timestamp(&tt, fsec, &tz, &result) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return result;
}
