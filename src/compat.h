/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  PostgreSQL version differences, in one place.
 *
 * Everything else in retention is written against PostgreSQL 15; the
 * macros here map it onto 13 to 17.  Nothing else should test
 * PG_VERSION_NUM.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef RETENTION_COMPAT_H
#define RETENTION_COMPAT_H

#include "postgres.h"

#if PG_VERSION_NUM < 130000
#error "retention requires PostgreSQL 13 or later"
#endif

/* MarkGUCPrefixReserved() replaced EmitWarningsOnPlaceholders() in 15 */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

/*
 * Soft errors in type input functions (16+): ereturn() reports into an
 * ErrorSaveContext when the caller passed one, and raises otherwise.
 */
#if PG_VERSION_NUM >= 160000
#include "nodes/miscnodes.h"
#define RETENTION_ESCONTEXT(fcinfo) ((fcinfo)->context)
#else
#define RETENTION_ESCONTEXT(fcinfo) ((Node *) NULL)
#define ereturn(context, dummy_value, ...) \
	do { \
		(void) (context); \
		ereport(ERROR, __VA_ARGS__); \
		return dummy_value; \
	} while (0)
#endif

/* wait events for extensions got names of their own in 17 */
#if PG_VERSION_NUM >= 170000
#define RETENTION_WAIT_EVENT(name) WaitEventExtensionNew(name)
#else
#define RETENTION_WAIT_EVENT(name) PG_WAIT_EXTENSION
#endif

/*
 * SPI_commit() starts the next transaction itself from 15 on; before, the
 * caller had to (SPI_start_transaction(), a no-op from 15).
 */
#if PG_VERSION_NUM < 150000
#define retention_spi_commit() \
	do { SPI_commit(); SPI_start_transaction(); } while (0)
#else
#define retention_spi_commit() SPI_commit()
#endif

/* a backend's local transaction id moved into its virtual transaction id in 17 */
#if PG_VERSION_NUM >= 170000
#define RETENTION_LXID (MyProc->vxid.lxid)
#else
#define RETENTION_LXID (MyProc->lxid)
#endif

/* InitMaterializedSRF() (15) sets up a set-returning function's tuplestore */
#if PG_VERSION_NUM < 150000
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/tuplestore.h"

static inline void
InitMaterializedSRF(FunctionCallInfo fcinfo, bits32 flags)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	MemoryContext oldcontext;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	oldcontext = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->setDesc = CreateTupleDescCopy(tupdesc);
	MemoryContextSwitchTo(oldcontext);
}
#endif

/* pg_analyze_and_rewrite() was renamed when its variants came, in 15 */
#if PG_VERSION_NUM < 150000
#define pg_analyze_and_rewrite_fixedparams(parsetree, sql, types, ntypes, env) \
	pg_analyze_and_rewrite((parsetree), (sql), (types), (ntypes), (env))
#endif

/*
 * Databases left invalid by an interrupted DROP DATABASE are marked with
 * datconnlimit -2 since the minor releases of August 2023 (15.4, 14.9,
 * 13.12); before, there are none to skip.
 */
#include "catalog/pg_database.h"
#ifndef DATCONNLIMIT_INVALID_DB
#define DATCONNLIMIT_INVALID_DB (-2)
#endif

/* ProcessUtility_hook's readOnlyTree argument came in 14 */
#if PG_VERSION_NUM < 140000
#define RETENTION_UTILITY_PARAMS \
	PlannedStmt *pstmt, const char *queryString, ProcessUtilityContext context, \
	ParamListInfo params, QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc
#define RETENTION_UTILITY_ARGS \
	pstmt, queryString, context, params, queryEnv, dest, qc
#else
#define RETENTION_UTILITY_PARAMS \
	PlannedStmt *pstmt, const char *queryString, bool readOnlyTree, \
	ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv, \
	DestReceiver *dest, QueryCompletion *qc
#define RETENTION_UTILITY_ARGS \
	pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc
#endif


#endif							/* RETENTION_COMPAT_H */
