/*-------------------------------------------------------------------------
 *
 * table.c
 *	  How retention sees a relation: its tagged columns, and, when it is
 *	  protected (itself or through a partitioned ancestor), how; cached
 *	  per backend, rebuilt after relcache invalidation.  Also the
 *	  extension's owner, as the rules' lookups run as it.
 *
 * Each column's rules are those of the regime in force (policy.c) for its
 * type modifier's purposes.  Not here: what the rules decide (expiry.c),
 * holds and consents (holds.c).
 *
 * Copyright (c) 2026, retention developers
 *
 * src/table.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "expiry.h"

static MemoryContext TableCacheContext = NULL;
static HTAB *table_cache = NULL;
static RetentionTable *last_table = NULL;
/* some entry is named like a Citus shard (RetentionTable.citus_watched) */
static bool citus_entries = false;

static bool owner_valid = false;

static void protection_cache_flush(void);
static Oid	extension_owner = InvalidOid;

/* bumped by every flush: what callers derived from the caches is stale */
uint64		retention_cache_generation = 0;

static void
table_cache_flush(Oid relid)
{
	bool		all = !OidIsValid(relid);

	retention_cache_generation++;
	if (!all && retention_policy_catalog_rel(relid))
		all = true;

	if (all)
	{
		retention_policy_invalidate();
		retention_zone_invalidate();
		protection_cache_flush();
		owner_valid = false;
	}
	last_table = NULL;
	if (table_cache == NULL)
		return;
	if (all)
	{
		HASH_SEQ_STATUS status;
		RetentionTable *t;

		hash_seq_init(&status, table_cache);
		while ((t = hash_seq_search(&status)) != NULL)
			t->valid = false;
	}
	else
	{
		RetentionTable *t = hash_search(table_cache, &relid, HASH_FIND, NULL);

		if (t != NULL)
			t->valid = false;
		if (citus_entries)
		{
			HASH_SEQ_STATUS status;

			/* what a relation named like a shard is follows its table */
			hash_seq_init(&status, table_cache);
			while ((t = hash_seq_search(&status)) != NULL)
				if (t->citus_watched &&
					(t->citus_watch == relid || !OidIsValid(t->citus_watch)))
					t->valid = false;
		}
	}
}

static void
table_cache_init(void)
{
	HASHCTL		ctl;

	if (table_cache != NULL)
		return;
	if (TableCacheContext == NULL)
		TableCacheContext = AllocSetContextCreate(CacheMemoryContext,
												   "retention table cache",
												   ALLOCSET_DEFAULT_SIZES);
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(RetentionTable);
	ctl.hcxt = TableCacheContext;
	table_cache = hash_create("retention tables", 64, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	retention_register_flush(table_cache_flush);
}

/*
 * The extension's owner: the rules' SPI queries run as it, since they read
 * catalog tables (holds, consents) that the writing role may not read.
 */
Oid
retention_extension_owner(void)
{
	if (!owner_valid)
	{
		bool		isnull;
		int			ret;
		int			nestlevel = retention_pin_search_path();

		SPI_connect();
		ret = SPI_execute("SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'retention'",
						  true, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("extension \"retention\" is not installed in this database")));
		extension_owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
		retention_unpin_search_path(nestlevel);
		owner_valid = true;
	}
	return extension_owner;
}

/* -------------------------------------------------------------------------
 * The relation cache
 * -------------------------------------------------------------------------
 */

static AttrNumber
attnum_of(TupleDesc desc, const char *name, Oid *type)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
		{
			if (type)
				*type = att->atttypid;
			return att->attnum;
		}
	}
	return InvalidAttrNumber;
}

/*
 * retention_kept_plan: the plan of sql, prepared on first use and kept in
 * *plan for the backend's life (the plan cache replans it after DDL on
 * what it reads).
 */
SPIPlanPtr
retention_kept_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare(\"%s\") failed: %s", sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*plan = p;
	}
	return *plan;
}

/*
 * The two statements below run for every table built into the cache, a
 * sweep's leaves after each VACUUM of theirs: planned once per backend.
 */
static SPIPlanPtr protection_plan = NULL;
static SPIPlanPtr methods_plan = NULL;

/*
 * What retention.protected_table and retention.column_method say of a
 * relation (itself or through an ancestor), by column name, as read for
 * it.  Kept across rebuilds of its RetentionTable, which every VACUUM of
 * the relation causes (a relcache invalidation): dropped with everything
 * when those catalog tables change, and read again when the relation's
 * ancestors are no longer those it was read for (a partition attached or
 * detached).
 */
typedef struct Protection
{
	Oid			relid;			/* the key */
	MemoryContext cxt;			/* what the entry points to */
	int			nancestors;
	Oid		   *ancestors;
	bool		found;			/* protected, itself or through an ancestor */
	Oid			protected_relid;
	char	   *ended_at;
	char	   *subscriber;
	char	   *anchor;
	char	   *originated;
	bool		keep_anonymized;
	bool		contract;
	int			nmethods;		/* methods other than erase */
	char	  **method_column;
	int		   *method;
} Protection;

static MemoryContext ProtectionContext = NULL;
static HTAB *protection_cache = NULL;

static void
protection_cache_flush(void)
{
	if (ProtectionContext != NULL)
		MemoryContextReset(ProtectionContext);
	protection_cache = NULL;
}

static char *
protection_value(HeapTuple tup, TupleDesc desc, int col, MemoryContext cxt)
{
	char	   *v = SPI_getvalue(tup, desc, col);

	return v ? MemoryContextStrdup(cxt, v) : NULL;
}

/* the catalog's rows for relid, whose ancestors are as given, read into cxt */
static void
read_protection(Protection *p, List *ancestors, MemoryContext cxt)
{
	ListCell   *lc;
	Datum	   *oids;
	int			n = 0;
	int			ret;
	int			nestlevel;
	uint64		i;

	p->nancestors = list_length(ancestors);
	p->ancestors = MemoryContextAlloc(cxt, sizeof(Oid) * Max(p->nancestors, 1));
	oids = palloc(sizeof(Datum) * (p->nancestors + 1));
	oids[n++] = ObjectIdGetDatum(p->relid);
	foreach(lc, ancestors)
	{
		p->ancestors[n - 1] = lfirst_oid(lc);
		oids[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	}

	nestlevel = retention_pin_search_path();
	SPI_connect();
	/* originated and table_kind are 1.1's: read as JSON, a 1.0 catalog works */
	ret = SPI_execute_plan(retention_kept_plan(&protection_plan,
									 "SELECT relid::oid, ended_at, subscriber, on_expiry, billing_anchor, "
									 "pg_catalog.to_jsonb(p) OPERATOR(pg_catalog.->>) 'originated', "
									 "pg_catalog.to_jsonb(p) OPERATOR(pg_catalog.->>) 'table_kind' "
									 "FROM retention.protected_table p WHERE relid::oid OPERATOR(pg_catalog.=) ANY ($1)",
									 1, (Oid[]) {OIDARRAYOID}),
						   (Datum[]) {PointerGetDatum(construct_array(oids, n, OIDOID, sizeof(Oid),
																	  true, TYPALIGN_INT))},
						   NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	sdesc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *kind;

		p->found = true;
		p->protected_relid = DatumGetObjectId(SPI_getbinval(tup, sdesc, 1, &isnull));
		p->ended_at = protection_value(tup, sdesc, 2, cxt);
		p->subscriber = protection_value(tup, sdesc, 3, cxt);
		p->keep_anonymized = strcmp(SPI_getvalue(tup, sdesc, 4), "anonymize") == 0;
		p->anchor = protection_value(tup, sdesc, 5, cxt);
		p->originated = protection_value(tup, sdesc, 6, cxt);
		kind = SPI_getvalue(tup, sdesc, 7);
		p->contract = kind != NULL && strcmp(kind, "subscriber") == 0;

		ret = SPI_execute_plan(retention_kept_plan(&methods_plan,
										 "SELECT attname, method FROM retention.column_method "
										 "WHERE relid::oid OPERATOR(pg_catalog.=) $1",
										 1, (Oid[]) {OIDOID}),
							   (Datum[]) {ObjectIdGetDatum(p->protected_relid)}, NULL, true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
		p->method_column = MemoryContextAlloc(cxt, sizeof(char *) * Max(SPI_processed, 1));
		p->method = MemoryContextAlloc(cxt, sizeof(int) * Max(SPI_processed, 1));
		for (i = 0; i < SPI_processed; i++)
		{
			p->method_column[i] = protection_value(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, cxt);
			p->method[i] = method_lookup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
		}
		p->nmethods = (int) SPI_processed;
	}
	SPI_finish();
	retention_unpin_search_path(nestlevel);
}

static bool
same_ancestors(const Protection *p, List *ancestors)
{
	ListCell   *lc;
	int			n = 0;

	if (p->nancestors != list_length(ancestors))
		return false;
	foreach(lc, ancestors)
		if (p->ancestors[n++] != lfirst_oid(lc))
			return false;
	return true;
}

static const Protection *
protection_of(Oid relid, List *ancestors)
{
	Protection *p;
	Protection	fresh;
	bool		found;
	uint64		generation;

	if (protection_cache != NULL)
	{
		p = hash_search(protection_cache, &relid, HASH_FIND, &found);
		if (found && same_ancestors(p, ancestors))
			return p;
	}

	/*
	 * Read into a context of its own under the caller's, then kept, unless
	 * the catalog changed meanwhile (the read ran queries, which process
	 * invalidations): then used this once, and freed with the caller's.
	 */
	memset(&fresh, 0, sizeof(fresh));
	fresh.relid = relid;
	fresh.cxt = AllocSetContextCreate(CurrentMemoryContext, "retention protection",
									  ALLOCSET_SMALL_SIZES);
	generation = retention_cache_generation;
	read_protection(&fresh, ancestors, fresh.cxt);
	if (generation != retention_cache_generation)
	{
		p = MemoryContextAlloc(fresh.cxt, sizeof(Protection));
		*p = fresh;
		return p;
	}

	if (ProtectionContext == NULL)
		ProtectionContext = AllocSetContextCreate(CacheMemoryContext,
												  "retention protection cache",
												  ALLOCSET_SMALL_SIZES);
	if (protection_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(Protection);
		ctl.hcxt = ProtectionContext;
		protection_cache = hash_create("retention protections", 64, &ctl,
									   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	/* an entry read for other ancestors goes */
	p = hash_search(protection_cache, &relid, HASH_ENTER, &found);
	if (found)
		MemoryContextDelete(p->cxt);
	MemoryContextSetParent(fresh.cxt, ProtectionContext);
	*p = fresh;
	return p;
}

/* protection of relid (itself or through an ancestor): fills t */
static void
load_protection(RetentionTable *t, Relation rel, MemoryContext cxt)
{
	List	   *ancestors = NIL;
	const Protection *p;
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	if (rel->rd_rel->relispartition)
		ancestors = get_partition_ancestors(t->relid);
	p = protection_of(t->relid, ancestors);
	if (!p->found && retention_citus_shard_candidate(t->relid))
	{
		/*
		 * A shard is protected as its table is on this node, like a
		 * partition of it: found through Citus's metadata each time the
		 * entry is built, and rebuilt when Citus invalidates the table.
		 */
		t->citus_watched = true;
		citus_entries = true;
		t->citus_table = retention_citus_shard(t->relid, &t->citus_watch);
		if (OidIsValid(t->citus_table))
		{
			ancestors = lcons_oid(t->citus_table, get_partition_ancestors(t->citus_table));
			p = protection_of(t->relid, ancestors);
		}
	}
	if (!p->found)
		return;

	t->protected_relid = p->protected_relid;
	t->ended_at = attnum_of(desc, p->ended_at, &t->ended_at_type);
	if (p->subscriber != NULL)
		t->subscriber = attnum_of(desc, p->subscriber, NULL);
	t->keep_anonymized = p->keep_anonymized;
	if (p->anchor != NULL)
		t->anchor = attnum_of(desc, p->anchor, &t->anchor_type);
	if (p->originated != NULL)
	{
		Oid			type;

		t->originated = attnum_of(desc, p->originated, &type);
		if (t->originated != InvalidAttrNumber && type != BOOLOID)
			t->originated = InvalidAttrNumber;
	}
	t->contract = p->contract;

	if (t->ended_at == InvalidAttrNumber ||
		(t->ended_at_type != TIMESTAMPTZOID && t->ended_at_type != TIMESTAMPOID))
	{
		ereport(WARNING,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("protected table \"%s\" has no timestamp column \"%s\"",
						RelationGetRelationName(rel), p->ended_at),
				 errdetail("Nothing of it expires until it is protected again."),
				 errhint("Run retention.unprotect() and retention.protect() with the right column.")));
		t->ended_at = InvalidAttrNumber;
	}

	for (i = 0; i < p->nmethods; i++)
	{
		int			c;

		for (c = 0; c < t->ncolumns; c++)
			if (strcmp(NameStr(t->columns[c].attname), p->method_column[i]) == 0)
				t->columns[c].method = (RetentionMethod) p->method[i];
	}
}

/*
 * A partition's tagged columns, in the order of the protected table's: SQL
 * built for the protected table and for each partition passes them alike.
 */
static void
order_like_root(RetentionTable *t)
{
	Relation	root = relation_open(t->protected_relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(root);
	RetentionColumn *ordered = palloc(sizeof(RetentionColumn) * Max(t->ncolumns, 1));
	int			n = 0;
	int			i,
				c;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		for (c = 0; c < t->ncolumns; c++)
			if (strcmp(NameStr(t->columns[c].attname), NameStr(att->attname)) == 0)
				ordered[n++] = t->columns[c];
	}
	/* a partition has exactly its root's columns */
	if (n == t->ncolumns)
		memcpy(t->columns, ordered, sizeof(RetentionColumn) * n);
	pfree(ordered);
	relation_close(root, NoLock);
}

static void
build_table(RetentionTable *t)
{
	Relation	rel = table_open(t->relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	t->owner = rel->rd_rel->relowner;
	t->columns = MemoryContextAllocZero(TableCacheContext,
										sizeof(RetentionColumn) * Max(desc->natts, 1));
	t->timestamps = MemoryContextAllocZero(TableCacheContext,
										   sizeof(AttrNumber) * Max(desc->natts, 1));
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		int			kind;

		if (att->attisdropped)
			continue;
		if (att->atttypid == TIMESTAMPTZOID || att->atttypid == TIMESTAMPOID)
			t->timestamps[t->ntimestamps++] = att->attnum;
		kind = retention_type_kind(att->atttypid);
		if (kind == RT_NONE)
			continue;
		if (t->ncolumns >= RETENTION_MAX_COLUMNS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("table \"%s\" has more than %d purpose-tagged columns",
							RelationGetRelationName(rel), RETENTION_MAX_COLUMNS)));
		t->columns[t->ncolumns].attnum = att->attnum;
		t->columns[t->ncolumns].attname = att->attname;
		t->columns[t->ncolumns].kind = (RetentionTypeKind) kind;
		t->columns[t->ncolumns].tagged = purpose_set_from_typmod(att->atttypmod);
		t->columns[t->ncolumns].method = RM_ERASE;
		t->columns[t->ncolumns].notnull = att->attnotnull;
		t->ncolumns++;
	}
	load_protection(t, rel, TableCacheContext);
	/* what the regime in force keeps each column for */
	for (i = 0; i < t->ncolumns; i++)
	{
		RetentionColumn *c = &t->columns[i];
		int			p;

		c->purposes = retention_column_rules(c->kind, c->tagged, t->contract);
		for (p = 0; p < RETENTION_NUM_PURPOSES; p++)
		{
			if ((c->purposes & PURPOSE_BIT(p)) == 0)
				continue;
			if (retention_rule(p)->must_keep)
				t->has_must_keep = true;
			if (retention_rule(p)->condition == RULE_CONSENT)
				t->has_marketing = true;
			else if (retention_rule(p)->condition == RULE_LOCATION_CONSENT)
				t->has_location = true;
		}
	}
	if (OidIsValid(t->protected_relid) && t->protected_relid != t->relid)
		order_like_root(t);
	t->subscriber_index = -1;
	for (i = 0; i < t->ncolumns; i++)
		if (t->columns[i].attnum == t->subscriber)
			t->subscriber_index = i;
	table_close(rel, NoLock);
}

static void
free_table(RetentionTable *t)
{
	if (t->columns)
		pfree(t->columns);
	if (t->timestamps)
		pfree(t->timestamps);
	if (t->update_plan)
		SPI_freeplan(t->update_plan);
	if (t->delete_plan)
		SPI_freeplan(t->delete_plan);
}

/*
 * retention_table: how retention sees relation relid.  The entry stays
 * valid until the next invalidation; callers must not keep it across
 * statements.
 */
RetentionTable *
retention_table(Oid relid)
{
	RetentionTable *t;
	RetentionTable fresh;
	bool		found;

	if (last_table != NULL && last_table->relid == relid && last_table->valid)
		return last_table;
	table_cache_init();

	t = hash_search(table_cache, &relid, HASH_FIND, &found);
	if (found && t->valid)
		return last_table = t;

	/* build into a local copy, so that an error leaves no half entry */
	memset(&fresh, 0, sizeof(fresh));
	fresh.relid = relid;
	PG_TRY();
	{
		build_table(&fresh);
	}
	PG_CATCH();
	{
		free_table(&fresh);
		PG_RE_THROW();
	}
	PG_END_TRY();
	fresh.valid = true;

	t = hash_search(table_cache, &relid, HASH_ENTER, &found);
	if (found)
		free_table(t);
	*t = fresh;
	return last_table = t;
}
