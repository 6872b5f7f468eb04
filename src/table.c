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

static bool owner_valid = false;
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

/* protection of relid (itself or through an ancestor): fills t */
static void
load_protection(RetentionTable *t, Relation rel, MemoryContext cxt)
{
	List	   *ancestors = NIL;
	ListCell   *lc;
	Datum	   *oids;
	int			n = 0;
	int			ret;
	Oid			argtypes[1] = {OIDARRAYOID};
	Datum		args[1];
	TupleDesc	desc = RelationGetDescr(rel);
	int			nestlevel;

	if (rel->rd_rel->relispartition)
		ancestors = get_partition_ancestors(t->relid);
	oids = palloc(sizeof(Datum) * (list_length(ancestors) + 1));
	oids[n++] = ObjectIdGetDatum(t->relid);
	foreach(lc, ancestors)
		oids[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	args[0] = PointerGetDatum(construct_array(oids, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));

	nestlevel = retention_pin_search_path();
	SPI_connect();
	/* originated and table_kind are 1.1's: read as JSON, a 1.0 catalog works */
	ret = SPI_execute_with_args("SELECT relid::oid, ended_at, subscriber, on_expiry, billing_anchor, "
								"pg_catalog.to_jsonb(p) OPERATOR(pg_catalog.->>) 'originated', "
								"pg_catalog.to_jsonb(p) OPERATOR(pg_catalog.->>) 'table_kind' "
								"FROM retention.protected_table p WHERE relid::oid = ANY ($1)",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	sdesc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *s;
		int			i;

		t->protected_relid = DatumGetObjectId(SPI_getbinval(tup, sdesc, 1, &isnull));
		t->ended_at = attnum_of(desc, SPI_getvalue(tup, sdesc, 2), &t->ended_at_type);
		if ((s = SPI_getvalue(tup, sdesc, 3)) != NULL)
			t->subscriber = attnum_of(desc, s, NULL);
		t->keep_anonymized = strcmp(SPI_getvalue(tup, sdesc, 4), "anonymize") == 0;
		if ((s = SPI_getvalue(tup, sdesc, 5)) != NULL)
			t->anchor = attnum_of(desc, s, &t->anchor_type);
		if ((s = SPI_getvalue(tup, sdesc, 6)) != NULL)
		{
			Oid			type;

			t->originated = attnum_of(desc, s, &type);
			if (t->originated != InvalidAttrNumber && type != BOOLOID)
				t->originated = InvalidAttrNumber;
		}
		t->contract = ((s = SPI_getvalue(tup, sdesc, 7)) != NULL &&
					   strcmp(s, "subscriber") == 0);

		if (t->ended_at == InvalidAttrNumber ||
			(t->ended_at_type != TIMESTAMPTZOID && t->ended_at_type != TIMESTAMPOID))
		{
			ereport(WARNING,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("protected table \"%s\" has no timestamp column \"%s\"",
							RelationGetRelationName(rel), SPI_getvalue(tup, sdesc, 2)),
					 errdetail("Nothing of it expires until it is protected again."),
					 errhint("Run retention.unprotect() and retention.protect() with the right column.")));
			t->ended_at = InvalidAttrNumber;
		}

		/* methods other than erase */
		ret = SPI_execute_with_args("SELECT attname, method FROM retention.column_method "
									"WHERE relid::oid = $1",
									1, (Oid[]) {OIDOID},
									(Datum[]) {ObjectIdGetDatum(t->protected_relid)},
									NULL, true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
		for (i = 0; i < (int) SPI_processed; i++)
		{
			char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			char	   *method = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
			int			c;

			for (c = 0; c < t->ncolumns; c++)
				if (strcmp(NameStr(t->columns[c].attname), name) == 0)
					t->columns[c].method = (RetentionMethod) method_lookup(method);
		}
	}
	SPI_finish();
	retention_unpin_search_path(nestlevel);
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
