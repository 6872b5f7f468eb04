/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Per-backend caches of the extension's own catalog: the OIDs of its
 *	  schema and types, and their invalidation.
 *
 * The caches are rebuilt lazily after any invalidation: a change to one of
 * the extension's catalog tables (each has a statement trigger calling
 * retention_catalog_changed(), which broadcasts a relcache invalidation at
 * commit), DROP/CREATE EXTENSION (pg_type and pg_namespace changes), or a
 * relcache reset.  Nothing here decides policy.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/catalog.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/resowner.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "retention.h"

PG_FUNCTION_INFO_V1(retention_catalog_changed);
PG_FUNCTION_INFO_V1(retention_outer_role);

const char *const retention_type_names[RT_NUM_KINDS] = {
	"msisdn", "imsi", "imei", "cell", "ident"
};

/* OIDs of the schema and of the types; valid while oids_valid */
static bool oids_valid = false;
static Oid	schema_oid = InvalidOid;
static Oid	type_oids[RT_NUM_KINDS];

/* callbacks registered by other modules, run on every flush */
#define MAX_FLUSH_CALLBACKS 8
static void (*flush_callbacks[MAX_FLUSH_CALLBACKS]) (Oid relid);
static int	num_flush_callbacks = 0;

static void
load_oids(void)
{
	int			i;

	schema_oid = get_namespace_oid(RETENTION_SCHEMA, true);
	for (i = 0; i < RT_NUM_KINDS; i++)
		type_oids[i] = OidIsValid(schema_oid) ?
			GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
							CStringGetDatum(retention_type_names[i]),
							ObjectIdGetDatum(schema_oid)) :
			InvalidOid;
	oids_valid = true;
}

/* the OID of schema "retention", or InvalidOid if missing_ok */
Oid
retention_schema_oid(bool missing_ok)
{
	if (!oids_valid)
		load_oids();
	if (!OidIsValid(schema_oid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("schema \"%s\" does not exist", RETENTION_SCHEMA),
				 errhint("Run CREATE EXTENSION retention CASCADE.")));
	return schema_oid;
}

/* which of our types typid is, or RT_NONE */
int
retention_type_kind(Oid typid)
{
	int			i;

	if (!oids_valid)
		load_oids();
	for (i = 0; i < RT_NUM_KINDS; i++)
		if (type_oids[i] == typid && OidIsValid(typid))
			return i;
	return RT_NONE;
}

Oid
retention_type_oid(RetentionTypeKind kind)
{
	if (!oids_valid)
		load_oids();
	return type_oids[kind];
}

/*
 * Other modules register here to hear of invalidations: relid is the
 * relation concerned, or InvalidOid for "everything".
 */
void
retention_register_flush(void (*callback) (Oid relid))
{
	if (num_flush_callbacks >= MAX_FLUSH_CALLBACKS)
		elog(ERROR, "too many retention cache callbacks");
	flush_callbacks[num_flush_callbacks++] = callback;
}

static void
flush_relation(Oid relid)
{
	int			i;

	for (i = 0; i < num_flush_callbacks; i++)
		flush_callbacks[i] (relid);
}

void
retention_invalidate_all(void)
{
	oids_valid = false;
	flush_relation(InvalidOid);
}

static void
relcache_callback(Datum arg, Oid relid)
{
	flush_relation(relid);
}

static void
namespace_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	/* a schema came or went: maybe ours (CREATE/DROP EXTENSION) */
	retention_invalidate_all();
}

static void
type_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	/* a type came or went (every CREATE TABLE makes one): recheck ours */
	oids_valid = false;
}

void
retention_catalog_init(void)
{
	CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, namespace_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(TYPEOID, type_callback, (Datum) 0);
}

/*
 * retention_catalog_changed: statement trigger on the extension's catalog
 * tables.  Broadcasts a relcache invalidation of the changed table, so that
 * every backend drops what it cached from it at the changer's commit.
 */
Datum
retention_catalog_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired by a trigger",
						"retention._catalog_changed")));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

/*
 * retention_outer_role: the role in effect outside any SECURITY DEFINER
 * function, that is the one SET ROLE chose.  The audit log records it
 * next to session_user.
 */
Datum
retention_outer_role(PG_FUNCTION_ARGS)
{
	Name		result = (Name) palloc0(NAMEDATALEN);

	namestrcpy(result, GetUserNameFromId(GetOuterUserId(), false));
	PG_RETURN_NAME(result);
}

/*
 * retention_pin_search_path: retention's own SPI queries run with
 * search_path = pg_catalog, pg_temp, whatever the session set, so that no
 * function or operator planted in a schema of the caller's path is picked
 * up (they often run as the extension's owner).  Returns the GUC nest
 * level to give back to retention_unpin_search_path(); an error unwinds it
 * with the (sub)transaction.
 */
int
retention_pin_search_path(void)
{
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

void
retention_unpin_search_path(int nestlevel)
{
	AtEOXact_GUC(true, nestlevel);
}

/*
 * retention_run_as: run step(arg) in a subtransaction as role userid, with
 * search_path pinned.  Returns NULL, or the error step raised (the
 * subtransaction then rolled back, the caller's role restored).  A cancel
 * or a shutdown is not the step's error: it is raised again, at once.
 */
static ErrorData *
run_as_flags(Oid userid, int flags, void (*step) (void *arg), void *arg)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;
	Oid			save_userid;
	int			save_sec_context;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		int			nestlevel;

		SetUserIdAndSecContext(userid, save_sec_context | flags |
							   SECURITY_LOCAL_USERID_CHANGE | SECURITY_NOFORCE_RLS);
		nestlevel = retention_pin_search_path();
		step(arg);
		retention_unpin_search_path(nestlevel);
		SetUserIdAndSecContext(save_userid, save_sec_context);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		SetUserIdAndSecContext(save_userid, save_sec_context);
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			ReThrowError(edata);
	}
	PG_END_TRY();
	return edata;
}

ErrorData *
retention_run_as(Oid userid, void (*step) (void *arg), void *arg)
{
	return run_as_flags(userid, 0, step, arg);
}

/*
 * retention_run_restricted: the same, as a security-restricted operation,
 * as VACUUM and REFRESH MATERIALIZED VIEW run a table owner's code.  For
 * work on a user's table, as its owner: the owner's triggers, rules and
 * index functions then run with the owner's rights, never a superuser's,
 * and cannot change the session's role.
 */
ErrorData *
retention_run_restricted(Oid userid, void (*step) (void *arg), void *arg)
{
	return run_as_flags(userid, SECURITY_RESTRICTED_OPERATION, step, arg);
}
