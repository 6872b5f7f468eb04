/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  PostgreSQL version differences, in one place.
 *
 * Everything else in retention is written against PostgreSQL 15 and the
 * newer interfaces; the macros here map it onto 15 to 18.  Nothing else
 * should test PG_VERSION_NUM.  15, 17 and 18 are built and tested (make
 * test, make test PG=17, make test PG=18); 16 has no Debian suite to test
 * in, so its guards are written to be right by construction: each one
 * names the release that changed the interface, and 16 falls on the side
 * of 17 or 15 according to that release.
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

#if PG_VERSION_NUM < 150000
#error "retention requires PostgreSQL 15 or later"
#endif

/*
 * The varlena macros (SET_VARSIZE, VARDATA_ANY, ...) moved from postgres.h
 * to varatt.h in 16.
 */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/*
 * A function that does not return: PostgreSQL 18 replaced the trailing
 * pg_attribute_noreturn() by a leading pg_noreturn, which is how retention
 * declares them (pg_noreturn extern void f(void);).  Before 18, the
 * equivalent of 18's definition.
 */
#ifndef pg_noreturn
#if defined(__GNUC__) || defined(__SUNPRO_C)
#define pg_noreturn __attribute__((noreturn))
#elif defined(_MSC_VER)
#define pg_noreturn __declspec(noreturn)
#else
#define pg_noreturn
#endif
#endif

/*
 * Soft errors in type input functions (16+): ereturn() reports into an
 * ErrorSaveContext when the caller passed one, and raises otherwise.
 */
#if PG_VERSION_NUM >= 160000
#include "nodes/miscnodes.h"
#define RETENTION_HAVE_ERRSAVE 1
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

/* a backend's local transaction id moved into its virtual transaction id in 17 */
#if PG_VERSION_NUM >= 170000
#define RETENTION_LXID (MyProc->vxid.lxid)
#else
#define RETENTION_LXID (MyProc->lxid)
#endif

/*
 * PortalRun() lost its run_once argument in 18 (a portal is always run
 * once); before, retention passes true.
 */
#if PG_VERSION_NUM >= 180000
#define retention_PortalRun(portal, count, isTopLevel, dest, altdest, qc) \
	PortalRun((portal), (count), (isTopLevel), (dest), (altdest), (qc))
#else
#define retention_PortalRun(portal, count, isTopLevel, dest, altdest, qc) \
	PortalRun((portal), (count), (isTopLevel), true, (dest), (altdest), (qc))
#endif

/*
 * Two backend functions that the fuzz shim (test/fuzz/shim.c) implements
 * for itself changed their signatures in 16: appendBinaryStringInfo() and
 * appendBinaryStringInfoNT() take their data as const void *, and
 * ExceptionalCondition() lost its errorType argument.
 */
#if PG_VERSION_NUM >= 160000
#define RETENTION_BINARY_DATA const void
#define RETENTION_EXCEPTIONAL_CONDITION_ARGS \
	const char *conditionName, const char *fileName, int lineNumber
#define RETENTION_ERROR_TYPE "FailedAssertion"
#else
#define RETENTION_BINARY_DATA const char
#define RETENTION_EXCEPTIONAL_CONDITION_ARGS \
	const char *conditionName, const char *errorType, const char *fileName, int lineNumber
#define RETENTION_ERROR_TYPE errorType
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
