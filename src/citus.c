/*-------------------------------------------------------------------------
 *
 * citus.c
 *	  Citus: fail closed.  Which relations Citus manages (distributed,
 *	  reference and Citus local tables, and their shards), so that
 *	  protect() refuses them, report() and verify() say why retention does
 *	  not enforce them, and the sweep fails them loudly instead of logging
 *	  "done, 0 rows" over a coordinator's empty shell table.
 *
 * Retention does not enforce Citus tables yet (issue 18): their rows live
 * in shards, on the worker nodes or the coordinator, where retention's
 * triggers look their table up by the shard's OID and find nothing, and
 * which the sweep and report() never read.  This file is not the support
 * of Citus tables; it only tells them apart, from Citus's own metadata
 * (pg_dist_partition, pg_dist_shard), never from a shard's OID.
 *
 * Citus need not be installed: its catalogs are looked up by name at run
 * time, and every query that names them is built here, so nothing that is
 * parsed when Citus is absent refers to them.  A Citus whose version
 * retention does not know is a problem of its own (report(), verify(),
 * protect()); its metadata is still read as far as it can be, and a table
 * whose metadata cannot be read counts as managed by Citus.
 *
 * Copyright (c) 2026, retention developers
 *
 * src/citus.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "retention.h"

PG_FUNCTION_INFO_V1(retention_citus_present);
PG_FUNCTION_INFO_V1(retention_citus_problem);
PG_FUNCTION_INFO_V1(retention_citus_version_problem);
PG_FUNCTION_INFO_V1(retention_citus_refuse);

/* the Citus major versions whose metadata this file was written against */
#define CITUS_KNOWN_MAJOR_MIN	11
#define CITUS_KNOWN_MAJOR_MAX	13

typedef enum CitusKind
{
	CITUS_NONE = 0,
	CITUS_DISTRIBUTED,			/* hash, range or append distributed */
	CITUS_SINGLE_SHARD,			/* distributed without a key (schema-based
								 * sharding) */
	CITUS_REFERENCE,			/* one shard, a copy on every node */
	CITUS_LOCAL,				/* a Citus local table, on the coordinator */
	CITUS_SHARD					/* a shard of one of these */
} CitusKind;

typedef struct CitusTable
{
	Oid			relid;			/* the relation asked about */
	CitusKind	kind;
	Oid			managed;		/* the relation Citus manages: relid, or one
								 * of its partitions */
	Oid			logical;		/* of a shard: its table */
	Oid			watch;			/* lookup_shard()'s */
	char	   *distcol;		/* the distribution column, if any */
} CitusTable;

/* is Citus's metadata in this database (CREATE EXTENSION citus)? */
bool
retention_citus_present_in_db(void)
{
	return OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE));
}

/* a shard's id, from its name: <table>_<shardid> */
static int64
shardid_of_name(const char *relname)
{
	const char *us = strrchr(relname, '_');
	const char *p;

	if (us == NULL || us[1] == '\0' || strlen(us + 1) > 18)
		return 0;
	for (p = us + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return strtoi64(us + 1, NULL, 10);
}

/*
 * The name Citus gives shard shardid of a table named name, as its
 * AppendShardIdToName() does: <name>_<shardid>, or, where that would not
 * fit in NAMEDATALEN, the name cut short and a hash of it before the id.
 */
static char *
citus_shard_name(const char *name, int64 shardid)
{
	char		suffix[32];
	int			namelen = strlen(name);
	int			suffixlen;
	uint32		hash;
	int			clip;

	snprintf(suffix, sizeof(suffix), "_" INT64_FORMAT, shardid);
	suffixlen = strlen(suffix);
	if (namelen < NAMEDATALEN - suffixlen)
		return psprintf("%s%s", name, suffix);
	hash = DatumGetUInt32(hash_any((const unsigned char *) name, namelen));
	clip = pg_mbcliplen(name, namelen, NAMEDATALEN - suffixlen - 10);
	return psprintf("%.*s_%.8x%s", clip, name, hash, suffix);
}

/*
 * Whether ct->relid is a shard: a shard is named after its table
 * (citus_shard_name()), in its schema, and this node holds a placement of
 * it; a table that merely takes a shard's name on another node is not one.
 * ct->watch gets the table whose relcache Citus invalidates when the
 * answer may change (it does so for a table whenever one of its shards or
 * placements comes or goes): the table whose shard id the name carries,
 * else the one named like it without the id; InvalidOid if neither is
 * known.  Inside SPI.
 */
static void
lookup_shard(CitusTable *ct)
{
	char	   *relname = get_rel_name(ct->relid);
	int64		shardid = relname ? shardid_of_name(relname) : 0;
	bool		isnull;
	uint64		i;

	ct->watch = InvalidOid;
	if (shardid <= 0 ||
		!OidIsValid(get_relname_relid("pg_dist_shard", PG_CATALOG_NAMESPACE)))
		return;
	if (SPI_execute_with_args(
							  "SELECT s.logicalrelid::pg_catalog.oid, l.relname::pg_catalog.text, "
							  "       l.relnamespace OPERATOR(pg_catalog.=) $2 "
							  "   AND EXISTS (SELECT 1 FROM pg_catalog.pg_dist_placement p, "
							  "                             pg_catalog.pg_dist_local_group g "
							  "                WHERE p.shardid = s.shardid AND p.groupid = g.groupid) "
							  "  FROM pg_catalog.pg_dist_shard s "
							  "  JOIN pg_catalog.pg_class l ON l.oid = s.logicalrelid "
							  " WHERE s.shardid = $1",
							  2, (Oid[]) {INT8OID, OIDOID},
							  (Datum[]) {Int64GetDatum(shardid),
							  ObjectIdGetDatum(get_rel_namespace(ct->relid))},
							  NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_dist_shard");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Oid			logical = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		char	   *name = SPI_getvalue(tup, desc, 2);
		Datum		here = SPI_getbinval(tup, desc, 3, &isnull);

		ct->watch = logical;
		if (name == NULL || isnull || !DatumGetBool(here) ||
			strcmp(citus_shard_name(name, shardid), relname) != 0)
			continue;
		ct->kind = CITUS_SHARD;
		ct->managed = ct->relid;
		ct->logical = logical;
		return;
	}
	if (!OidIsValid(ct->watch))
	{
		/* no shard has this id yet (a split makes it): the table named so */
		*strrchr(relname, '_') = '\0';
		ct->watch = get_relname_relid(relname, get_rel_namespace(ct->relid));
	}
}

/*
 * What Citus makes of ct->relid (or of one of its partitions), from
 * pg_dist_partition; else, whether it is a shard, from pg_dist_shard.  Runs
 * with search_path pinned (retention_run_as()).
 */
static void
citus_lookup_step(void *arg)
{
	CitusTable *ct = (CitusTable *) arg;
	bool		isnull;
	MemoryContext cxt = CurrentMemoryContext;

	ct->kind = CITUS_NONE;
	if (!retention_citus_present_in_db())
		return;
	SPI_connect();
	if (SPI_execute_with_args(
							  "SELECT p.logicalrelid::pg_catalog.oid, p.partmethod::pg_catalog.text, "
							  "       p.repmodel::pg_catalog.text, p.colocationid, "
							  "       (SELECT a.attname::pg_catalog.text FROM pg_catalog.pg_attribute a "
							  "         WHERE a.attrelid = p.logicalrelid "
							  "           AND a.attnum = pg_catalog.substring(p.partkey, ':varattno ([0-9]+)')::pg_catalog.int2) "
							  "  FROM pg_catalog.pg_dist_partition p "
							  " WHERE p.logicalrelid = $1 "
							  "    OR p.logicalrelid = ANY (SELECT t.relid FROM pg_catalog.pg_partition_tree($1) t) "
							  " ORDER BY p.logicalrelid = $1 DESC, p.logicalrelid::pg_catalog.oid LIMIT 1",
							  1, (Oid[]) {REGCLASSOID}, (Datum[]) {ObjectIdGetDatum(ct->relid)},
							  NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_dist_partition");
	if (SPI_processed > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *partmethod = SPI_getvalue(tup, desc, 2);
		char	   *repmodel = SPI_getvalue(tup, desc, 3);
		char	   *colocation = SPI_getvalue(tup, desc, 4);
		char	   *distcol = SPI_getvalue(tup, desc, 5);

		ct->managed = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		/* as Citus's own citus_tables view tells them apart */
		if (partmethod != NULL && strcmp(partmethod, "n") != 0)
			ct->kind = CITUS_DISTRIBUTED;
		else if (repmodel != NULL && strcmp(repmodel, "t") == 0)
			ct->kind = CITUS_REFERENCE;
		else if (colocation != NULL && strcmp(colocation, "0") == 0)
			ct->kind = CITUS_LOCAL;
		else
			ct->kind = CITUS_SINGLE_SHARD;
		ct->distcol = distcol ? MemoryContextStrdup(cxt, distcol) : NULL;
		SPI_finish();
		return;
	}

	lookup_shard(ct);
	SPI_finish();
}

/* the installed citus extension's version, or NULL */
static char *
citus_version(void)
{
	char	   *v = NULL;
	MemoryContext cxt = CurrentMemoryContext;
	int			nestlevel = retention_pin_search_path();

	SPI_connect();
	if (SPI_execute("SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'citus'",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_extension");
	if (SPI_processed > 0)
	{
		v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		if (v != NULL)
			v = MemoryContextStrdup(cxt, v);
	}
	SPI_finish();
	retention_unpin_search_path(nestlevel);
	return v;
}

/*
 * retention_citus_version_problem: NULL, or what is wrong with the Citus
 * installed in this database: a version retention does not know, whose
 * metadata may say what this file cannot read.
 */
char *
retention_citus_unknown_version(void)
{
	char	   *v;
	char	   *end;
	long		major;

	if (!retention_citus_present_in_db())
		return NULL;
	v = citus_version();
	if (v == NULL)
		return NULL;
	major = strtol(v, &end, 10);
	if (end != v && *end == '.' &&
		major >= CITUS_KNOWN_MAJOR_MIN && major <= CITUS_KNOWN_MAJOR_MAX)
		return NULL;
	return psprintf("Citus %s is installed, a version retention does not know (it knows Citus %d to %d): it cannot tell for sure which tables Citus manages",
					v, CITUS_KNOWN_MAJOR_MIN, CITUS_KNOWN_MAJOR_MAX);
}

static const char *
relname_or_oid(Oid relid)
{
	char	   *name = get_rel_name(relid);

	return name ? name : psprintf("%u", relid);
}

/* what keeps retention from reaching the rows Citus manages, one clause */
static char *
citus_kind_clause(const CitusTable *ct)
{
	char	   *what;

	switch (ct->kind)
	{
		case CITUS_DISTRIBUTED:
			what = ct->distcol ?
				psprintf("Citus distributed table (distribution column %s): its rows are in shards that retention's sweep and report do not reach",
						 quote_identifier(ct->distcol)) :
				pstrdup("Citus distributed table: its rows are in shards that retention's sweep and report do not reach");
			break;
		case CITUS_SINGLE_SHARD:
			what = pstrdup("Citus distributed table (single shard): its rows are in a shard that retention's sweep and report do not reach");
			break;
		case CITUS_REFERENCE:
			what = pstrdup("Citus reference table: its rows are in shards on every node that retention's sweep and report do not reach");
			break;
		case CITUS_LOCAL:
			what = pstrdup("Citus local table: its rows are in a shard that retention's sweep and report do not reach");
			break;
		case CITUS_SHARD:
			what = psprintf("shard of Citus table %s: Citus moves, splits and drops shards, and retention enforces none",
							quote_identifier(relname_or_oid(ct->logical)));
			break;
		default:
			return NULL;
	}
	return what;
}

/* the same, of the relation asked about: its own, or its partition's */
static char *
citus_kind_problem(const CitusTable *ct)
{
	char	   *what = citus_kind_clause(ct);

	if (what != NULL && ct->managed != ct->relid)
		what = psprintf("partition %s is a %s", quote_identifier(relname_or_oid(ct->managed)), what);
	return what;
}

/*
 * retention_citus_problem: NULL if Citus does not manage relid (nor any of
 * its partitions); else why retention does not enforce it, one clause, for
 * report(), verify() and the sweep's log.  Metadata that cannot be read is
 * a problem too: retention cannot tell where the rows are.
 */
char *
retention_citus_table_problem(Oid relid)
{
	CitusTable	ct;
	ErrorData  *edata;
	MemoryContext cxt = CurrentMemoryContext;

	if (!retention_citus_present_in_db())
		return NULL;
	memset(&ct, 0, sizeof(ct));
	ct.relid = relid;
	edata = retention_run_as(GetUserId(), citus_lookup_step, &ct);
	MemoryContextSwitchTo(cxt);
	if (edata != NULL)
		return psprintf("Citus's metadata could not be read (%s): retention cannot tell whether Citus manages this table",
						edata->message);
	return citus_kind_problem(&ct);
}

/* run lookup_shard() alone, in SPI */
static void
shard_lookup_step(void *arg)
{
	SPI_connect();
	lookup_shard((CitusTable *) arg);
	SPI_finish();
}

/*
 * retention_citus_shard_candidate: whether relid, in a database where
 * Citus is, is named as Citus names shards (<table>_<shardid>); cheap,
 * for the table cache to ask before it asks retention_citus_shard().
 */
bool
retention_citus_shard_candidate(Oid relid)
{
	char	   *relname;
	bool		candidate;

	if (!retention_citus_present_in_db())
		return false;
	relname = get_rel_name(relid);
	candidate = relname != NULL && shardid_of_name(relname) > 0;
	if (relname)
		pfree(relname);
	return candidate;
}

/*
 * retention_citus_shard: if relid is a shard of a Citus table placed on
 * this node, that table (its shell on this node), found from Citus's shard
 * metadata at each call: never from a shard's OID, which a move or a
 * split changes.  InvalidOid if relid is no shard here.  *watch gets the
 * relation whose relcache invalidation may change the answer, or
 * InvalidOid if none is known (then any may).  Metadata that cannot be
 * read is an error.
 */
Oid
retention_citus_shard(Oid relid, Oid *watch)
{
	CitusTable	ct;
	ErrorData  *edata;
	MemoryContext cxt = CurrentMemoryContext;

	memset(&ct, 0, sizeof(ct));
	ct.relid = relid;
	edata = retention_run_as(GetUserId(), shard_lookup_step, &ct);
	MemoryContextSwitchTo(cxt);
	if (edata != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot tell whether table \"%s\" is a shard of a Citus table",
						relname_or_oid(relid)),
				 errdetail("Citus's metadata could not be read (%s).", edata->message)));
	*watch = ct.watch;
	return ct.kind == CITUS_SHARD ? ct.logical : InvalidOid;
}

/* retention._citus_present(): is Citus's metadata in this database? */
Datum
retention_citus_present(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(retention_citus_present_in_db());
}

/* retention._citus_problem(tbl regclass): NULL, or why it is not enforced */
Datum
retention_citus_problem(PG_FUNCTION_ARGS)
{
	char	   *problem = retention_citus_table_problem(PG_GETARG_OID(0));

	if (problem == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(problem));
}

/* retention._citus_version_problem(): NULL, or the unknown Citus version */
Datum
retention_citus_version_problem(PG_FUNCTION_ARGS)
{
	char	   *problem = retention_citus_unknown_version();

	if (problem == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(problem));
}

/*
 * retention._citus_refuse(tbl regclass): protect()'s check.  Raises if
 * Citus manages the table, one of its partitions, or if the installed
 * Citus is a version retention does not know.  An error reading Citus's
 * metadata is raised as it is.
 */
Datum
retention_citus_refuse(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	const char *name = relname_or_oid(relid);
	const char *hint = "Retention does not enforce Citus tables yet: keep personal data in a local table that Citus does not manage (undistribute_table() makes a Citus table local again), and protect that.  See docs/citus.md.";
	CitusTable	ct;
	char	   *version;
	ErrorData  *edata;
	MemoryContext cxt = CurrentMemoryContext;

	if (!retention_citus_present_in_db())
		PG_RETURN_VOID();
	memset(&ct, 0, sizeof(ct));
	ct.relid = relid;
	edata = retention_run_as(GetUserId(), citus_lookup_step, &ct);
	MemoryContextSwitchTo(cxt);
	if (edata != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect table \"%s\"", name),
				 errdetail("Citus's metadata could not be read (%s): retention cannot tell whether Citus manages this table.",
						   edata->message),
				 errhint("Use a release of retention that knows this version of Citus.")));

	switch (ct.kind)
	{
		case CITUS_NONE:
			break;
		case CITUS_DISTRIBUTED:
		case CITUS_SINGLE_SHARD:
			if (ct.managed != relid)
				break;
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot protect distributed table \"%s\"", name),
					 ct.distcol ?
					 errdetail("Citus distributes it by column \"%s\": its rows are in shards that retention's sweep and report do not reach.",
							   ct.distcol) :
					 errdetail("Citus distributes it as a single shard: its rows are in a shard that retention's sweep and report do not reach."),
					 errhint("%s", hint)));
			break;
		case CITUS_REFERENCE:
			if (ct.managed != relid)
				break;
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot protect reference table \"%s\"", name),
					 errdetail("Citus keeps a copy of it on every node: its rows are in shards that retention's sweep and report do not reach."),
					 errhint("%s", hint)));
			break;
		case CITUS_LOCAL:
			if (ct.managed != relid)
				break;
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot protect Citus local table \"%s\"", name),
					 errdetail("Citus manages it on the coordinator (citus_add_local_table_to_metadata(), or a foreign key to a reference table): its rows are in a shard that retention's sweep and report do not reach."),
					 errhint("%s", hint)));
			break;
		case CITUS_SHARD:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot protect shard \"%s\" of Citus table \"%s\"",
							name, relname_or_oid(ct.logical)),
					 errdetail("Citus moves, splits and drops shards on its own."),
					 errhint("%s", hint)));
			break;
	}
	if (ct.kind != CITUS_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect table \"%s\"", name),
				 errdetail("Its partition \"%s\" is a %s.",
						   relname_or_oid(ct.managed), citus_kind_clause(&ct)),
				 errhint("%s", hint)));

	version = retention_citus_unknown_version();
	if (version != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot protect table \"%s\"", name),
				 errdetail("%s.", version),
				 errhint("Use a release of retention that knows this version of Citus.")));
	PG_RETURN_VOID();
}
