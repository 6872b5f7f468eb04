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

/* relation_open() moved from heapam.h to access/relation.h in 12; table.h
 * has table_open() since 12 as well; nothing to do for 13+ */

#endif							/* RETENTION_COMPAT_H */
