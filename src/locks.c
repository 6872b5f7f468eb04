/*-------------------------------------------------------------------------
 *
 * locks.c
 *	  The heavyweight locks that serialize retention's own work: a sweep of
 *	  a table against another sweep of it, and each sweep batch against
 *	  hold() placing a hold on the table.
 *
 * They are advisory lock tags, but of a class (locktag_field4) that no SQL
 * function can produce: pg_advisory_lock(bigint) and its kin use class 1,
 * pg_advisory_lock(integer, integer) class 2 (utils/adt/lockfuncs.c).  So
 * no role can take them to make sweeps skip a table, to hang a sweep, or to
 * hold up hold() while a batch deletes the rows it is about to keep.  The
 * only way to them from SQL is retention._lock(), which PUBLIC cannot
 * execute and which retention's SECURITY DEFINER functions call.
 *
 * pg_locks shows them as locktype advisory, classid the kind of lock,
 * objid the protected table, objsubid RETENTION_LOCK_CLASS.
 *
 * A database still at extension version 1.0 runs this library until it is
 * updated; its hold() takes the lock of 1.0, an ordinary advisory lock, so
 * the sweep takes that one too there (retention_legacy_lock_key).
 *
 * Copyright (c) 2026, retention developers
 *
 * src/locks.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"

#include "retention.h"

PG_FUNCTION_INFO_V1(retention_lock);

/* locktag_field4 of retention's locks: neither 1 nor 2, nor Citus's few */
#define RETENTION_LOCK_CLASS	0x5254

/* locktag_field2: the kind of lock, as the 1.0 keys' high halves */
static const uint32 lock_kind_key[] = {
	[RETENTION_LOCK_SWEEP] = 0x52455445,
	[RETENTION_LOCK_HOLD] = 0x52455448
};

static void
set_locktag(LOCKTAG *tag, RetentionLockKind kind, Oid relid)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, lock_kind_key[kind], (uint32) relid,
						 RETENTION_LOCK_CLASS);
}

/*
 * Take lock kind on relid in mode; a session lock lasts until released, a
 * transaction lock until the transaction ends.  With dont_wait, false if
 * another backend has it.
 */
bool
retention_lock_acquire(RetentionLockKind kind, Oid relid, LOCKMODE mode,
					   bool session, bool dont_wait)
{
	LOCKTAG		tag;

	set_locktag(&tag, kind, relid);
	return LockAcquire(&tag, mode, session, dont_wait) != LOCKACQUIRE_NOT_AVAIL;
}

void
retention_lock_release(RetentionLockKind kind, Oid relid, LOCKMODE mode, bool session)
{
	LOCKTAG		tag;

	set_locktag(&tag, kind, relid);
	LockRelease(&tag, mode, session);
}

/* the key of 1.0's lock, an advisory lock on a bigint that anyone can take */
int64
retention_legacy_lock_key(RetentionLockKind kind, Oid relid)
{
	return ((int64) lock_kind_key[kind] << 32) | (int64) relid;
}

/*
 * retention._lock(tbl regclass, kind text, shared boolean): take the lock of
 * that kind on tbl until the transaction ends, waiting for it.  Executable
 * by superusers only (REVOKEd from PUBLIC), so by retention's own SECURITY
 * DEFINER functions.
 */
Datum
retention_lock(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(1));
	bool		shared = PG_GETARG_BOOL(2);
	RetentionLockKind k = RETENTION_LOCK_SWEEP;

	if (strcmp(kind, "hold") == 0)
		k = RETENTION_LOCK_HOLD;
	else if (strcmp(kind, "sweep") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown retention lock \"%s\"", kind),
				 errhint("Valid locks are sweep and hold.")));
	(void) retention_lock_acquire(k, relid, shared ? ShareLock : ExclusiveLock,
								  false, false);
	PG_RETURN_VOID();
}
