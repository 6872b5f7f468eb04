/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  The ddl_command_start event triggers that need the statement itself:
 *	  refusing DDL that would take rows out of a protected table's reach
 *	  before it runs, and releasing the exposure views of the one table an
 *	  ALTER TABLE is about to change.
 *
 * At ddl_command_start the catalog does not yet say what a command will
 * do, and pg_event_trigger_ddl_commands() is empty: only the parse tree
 * names the table.  Everything that can be judged after the fact (dropped
 * or disabled triggers, rules, NOT NULL tagged columns) is checked at
 * ddl_command_end and sql_drop by the SQL functions of the 1.1 script;
 * this file is not for that.
 *
 * The functions are SECURITY DEFINER but keep the caller's search_path,
 * in which the statement names its table (so they pin none in SQL); once
 * the table is resolved, their own queries run with search_path pinned to
 * pg_catalog, pg_temp, as all of retention's C does, and are schema-
 * qualified besides.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/guard.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "retention.h"

PG_FUNCTION_INFO_V1(retention_guard_start);
PG_FUNCTION_INFO_V1(retention_exposures_before_alter);

/* the protected table that relid is (or is a partition of), or InvalidOid */
static Oid
protector_of(Oid relid)
{
	bool		isnull;
	Datum		d;
	Oid			result = InvalidOid;

	int			nestlevel;

	if (!OidIsValid(relid))
		return InvalidOid;
	nestlevel = retention_pin_search_path();
	SPI_connect();
	if (SPI_execute_with_args("SELECT retention._is_protected($1::pg_catalog.regclass)::pg_catalog.oid", 1,
							  (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(relid)},
							  NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up whether relation %u is protected", relid);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		result = DatumGetObjectId(d);
	SPI_finish();
	retention_unpin_search_path(nestlevel);
	return result;
}

static Oid
relid_of(RangeVar *rv)
{
	return rv ? RangeVarGetRelid(rv, NoLock, true) : InvalidOid;
}

static void
refuse_inheritance(RangeVar *parent)
{
	Oid			relid = relid_of(parent);
	Oid			protector = protector_of(relid);

	if (OidIsValid(protector))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot inherit from protected table \"%s\"", get_rel_name(relid)),
				 errdetail("Rows of an inheritance child show through the table, but no trigger or sweep reaches them."),
				 errhint("Make it a partition of a partitioned table (CREATE TABLE ... PARTITION OF).")));
}

/*
 * retention._guard_start(): ddl_command_start on CREATE TABLE and ALTER
 * TABLE.  Refuses, for every role, inheritance children of a protected
 * table and detaching a partition from one: both would leave rows that
 * show through the table (or did) where no trigger or sweep reaches them.
 */
Datum
retention_guard_start(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	Node	   *parsetree;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired by an event trigger", "retention._guard_start")));
	trigdata = (EventTriggerData *) fcinfo->context;
	parsetree = trigdata->parsetree;

	if (IsA(parsetree, CreateStmt))
	{
		CreateStmt *stmt = (CreateStmt *) parsetree;

		if (stmt->partbound == NULL)
		{
			foreach(lc, stmt->inhRelations)
			{
				refuse_inheritance(lfirst_node(RangeVar, lc));
			}
		}
	}
	else if (IsA(parsetree, AlterTableStmt))
	{
		AlterTableStmt *stmt = (AlterTableStmt *) parsetree;

		foreach(lc, stmt->cmds)
		{
			AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

			if (cmd->subtype == AT_AddInherit)
				refuse_inheritance((RangeVar *) cmd->def);
			else if (cmd->subtype == AT_DetachPartition ||
					 cmd->subtype == AT_DetachPartitionFinalize)
			{
				Oid			relid = relid_of(stmt->relation);

				if (OidIsValid(protector_of(relid)))
					ereport(ERROR,
							(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
							 errmsg("cannot detach a partition of protected table \"%s\"",
									get_rel_name(relid)),
							 errdetail("The partition's rows would leave retention: no trigger or sweep would reach them."),
							 errhint("Drop the partition, or take the table out of retention first with retention.unprotect().")));
			}
		}
	}
	PG_RETURN_NULL();
}

/*
 * retention._exposures_drop(): ddl_command_start on ALTER TABLE (1.0's
 * event trigger, now in C).  Releases the exposure views of the one table
 * the statement alters, so that the columns they use can change;
 * retention._exposures_create() rebuilds them at ddl_command_end.  Other
 * tables' views are left alone.
 */
Datum
retention_exposures_before_alter(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	Node	   *parsetree;
	RangeVar   *rv = NULL;
	Oid			relid;
	int			nestlevel;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired by an event trigger", "retention._exposures_drop")));
	trigdata = (EventTriggerData *) fcinfo->context;
	parsetree = trigdata->parsetree;

	if (IsA(parsetree, AlterTableStmt))
		rv = ((AlterTableStmt *) parsetree)->relation;
	else if (IsA(parsetree, RenameStmt))
		rv = ((RenameStmt *) parsetree)->relation;
	else if (IsA(parsetree, AlterObjectSchemaStmt))
		rv = ((AlterObjectSchemaStmt *) parsetree)->relation;
	relid = relid_of(rv);
	if (!OidIsValid(relid))
		PG_RETURN_NULL();

	nestlevel = retention_pin_search_path();
	SPI_connect();
	if (SPI_execute_with_args("SELECT retention._exposures_release($1::pg_catalog.regclass)", 1,
							  (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(relid)},
							  NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not release the exposure views of relation %u", relid);
	SPI_finish();
	retention_unpin_search_path(nestlevel);
	PG_RETURN_NULL();
}
