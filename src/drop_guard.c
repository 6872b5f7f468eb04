/*-------------------------------------------------------------------------
 *
 * drop_guard.c
 *	  Refuse DROP EXTENSION retention, and any DROP that would cascade to
 *	  it, while tables are protected, unless retention.allow_drop_extension
 *	  is on.
 *
 * Dropping the extension with CASCADE drops every purpose-tagged column of
 * every protected table, with its data, and the whole audit log: the
 * operator's CDRs lose their personal columns and the proof of what was
 * done to them goes too.  No event trigger can refuse it (the extension's
 * own event triggers and functions are among the objects dropped).  So a
 * ProcessUtility hook notes, before a DROP that could reach the extension
 * (DROP EXTENSION retention, any DROP ... CASCADE, DROP OWNED), which
 * tables are protected; DROP EXTENSION retention is refused there and
 * then, and the object access hook refuses the extension's deletion when a
 * cascade (DROP SCHEMA retention CASCADE, DROP EXTENSION pgcrypto CASCADE)
 * or DROP OWNED comes to it.  It works in a backend where the library is
 * loaded: always with shared_preload_libraries = 'retention' (the
 * recommended setting), otherwise only once something in the session has
 * called into the library.  Nothing else here decides policy.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/drop_guard.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "expiry.h"
#include "retention.h"

bool		retention_allow_drop_extension = false;

static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static object_access_hook_type prev_object_access_hook = NULL;

/* the protected tables while a DROP that may reach the extension runs */
static char *drop_protected = NULL;

/*
 * Could this statement drop the extension: DROP EXTENSION retention, any
 * DROP ... CASCADE (of its schema, of pgcrypto which it requires), DROP
 * OWNED.  *direct: it names the extension itself.
 */
static bool
may_drop_extension(Node *parsetree, bool *direct)
{
	ListCell   *lc;

	*direct = false;
	if (IsA(parsetree, DropOwnedStmt))
		return true;
	if (!IsA(parsetree, DropStmt))
		return false;
	if (((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION)
	{
		foreach(lc, ((DropStmt *) parsetree)->objects)
		{
			if (strcmp(strVal(lfirst(lc)), "retention") == 0)
				*direct = true;
		}
	}
	return *direct || ((DropStmt *) parsetree)->behavior == DROP_CASCADE;
}

/* the protected tables, as a list for a message; NULL if none */
static char *
protected_tables(void)
{
	char	   *result = NULL;
	MemoryContext cxt = CurrentMemoryContext;
	bool		pushed = false;
	int			nestlevel;
	Oid			nsp = get_namespace_oid(RETENTION_SCHEMA, true);
	Oid			save_userid;
	int			save_sec_context;

	/* an extension half made or half dropped protects nothing */
	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("protected_table", nsp)))
		return NULL;
	if (!ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		pushed = true;
	}
	/* as the extension's owner: whoever drops, the catalog is readable */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(retention_extension_owner(),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	nestlevel = retention_pin_search_path();
	SPI_connect();
	if (SPI_execute("SELECT pg_catalog.string_agg(p.relid::pg_catalog.text, ', ' ORDER BY p.relid::pg_catalog.text) "
					"FROM retention.protected_table p", true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		char	   *tables = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (tables)
			result = MemoryContextStrdup(cxt, tables);
	}
	SPI_finish();
	retention_unpin_search_path(nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	if (pushed)
		PopActiveSnapshot();
	return result;
}

static void
refuse_drop(const char *tables)
{
	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 errmsg("cannot drop extension retention while tables are protected"),
			 errdetail("Protected tables: %s.  Dropping the extension drops their purpose-tagged columns with their data, and the audit log.",
					   tables),
			 errhint("Take each table out of retention with retention.unprotect() first, or set retention.allow_drop_extension to on.")));
}

static void
retention_ProcessUtility(RETENTION_UTILITY_PARAMS)
{
	char	   *save_protected = drop_protected;
	bool		direct;

	/* not in the extension's own scripts, which never drop it */
	if (!retention_allow_drop_extension && IsTransactionState() && !creating_extension &&
		may_drop_extension(pstmt->utilityStmt, &direct) &&
		OidIsValid(get_extension_oid("retention", true)))
	{
		drop_protected = protected_tables();
		/* refused before anything is done; otherwise if it comes to that */
		if (direct && drop_protected)
			refuse_drop(drop_protected);
	}
	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(RETENTION_UTILITY_ARGS);
		else
			standard_ProcessUtility(RETENTION_UTILITY_ARGS);
	}
	PG_FINALLY();
	{
		drop_protected = save_protected;
	}
	PG_END_TRY();
}

/* the extension is about to be dropped, by cascade or DROP OWNED */
static void
retention_object_access(ObjectAccessType access, Oid classId, Oid objectId,
						int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access == OAT_DROP && classId == ExtensionRelationId &&
		drop_protected != NULL && !retention_allow_drop_extension &&
		objectId == get_extension_oid("retention", true))
		refuse_drop(drop_protected);
}

/* called by _PG_init */
void
retention_drop_guard_init(void)
{
	DefineCustomBoolVariable("retention.allow_drop_extension",
							 "Allows DROP EXTENSION retention while tables are protected.",
							 "Dropping the extension drops every purpose-tagged column of the "
							 "protected tables, with their data, and the audit log.",
							 &retention_allow_drop_extension,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = retention_ProcessUtility;
	prev_object_access_hook = object_access_hook;
	object_access_hook = retention_object_access;
}
