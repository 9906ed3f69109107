#include "db.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_log.h"

/* Migration N takes the schema from version N to N+1. Append, never edit. */
static const char *const migrations[] = {
    /* 0 → 1: nodes, jobs, actors, packages, key-value */
    "CREATE TABLE nodes ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  name TEXT NOT NULL,"
    "  state TEXT NOT NULL,"
    "  address TEXT,"
    "  resources TEXT NOT NULL,"
    "  registered_at INTEGER NOT NULL,"
    "  last_heartbeat INTEGER,"
    "  dead_at INTEGER,"
    "  message TEXT);"
    "CREATE INDEX nodes_state ON nodes(state, seq);"
    "CREATE TABLE jobs ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  state TEXT NOT NULL,"
    "  entrypoint TEXT NOT NULL,"
    "  env TEXT,"
    "  working_dir TEXT,"
    "  resources TEXT NOT NULL,"
    "  metadata TEXT,"
    "  node_id TEXT,"
    "  message TEXT,"
    "  exit_code INTEGER,"
    "  submitted_at INTEGER NOT NULL,"
    "  assigned_at INTEGER,"
    "  start_time INTEGER,"
    "  end_time INTEGER,"
    "  stop_requested INTEGER NOT NULL DEFAULT 0,"
    "  ray INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_state ON jobs(state, seq);"
    "CREATE INDEX jobs_node ON jobs(node_id, state);"
    "CREATE INDEX jobs_end ON jobs(end_time);"
    "CREATE TABLE actors ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT,"
    "  namespace TEXT,"
    "  state TEXT NOT NULL,"
    "  spec TEXT,"
    "  node_id TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  message TEXT);"
    "CREATE UNIQUE INDEX actors_name ON actors(namespace, name) WHERE name IS NOT NULL;"
    "CREATE TABLE packages ("
    "  sha256 TEXT PRIMARY KEY,"
    "  size INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE kv ("
    "  namespace TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  value BLOB NOT NULL,"
    "  content_type TEXT,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (namespace, key));",
    /* 1 → 2: the packages a job names, a JSON list of {sha256, name}; NULL for none */
    "ALTER TABLE jobs ADD COLUMN packages TEXT;",
    /* 2 → 3: actors as docs/actors.md has them (the first table was a placeholder, never
     * written). A name is unique in its namespace among actors that are not DEAD. */
    "DROP TABLE actors;"
    "CREATE TABLE actors ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  name TEXT,"
    "  namespace TEXT NOT NULL,"
    "  class TEXT NOT NULL,"
    "  package TEXT NOT NULL,"
    "  owner TEXT NOT NULL,"
    "  detached INTEGER NOT NULL,"
    "  state TEXT NOT NULL,"
    "  spec TEXT NOT NULL,"
    "  args BLOB NOT NULL,"
    "  node_id TEXT,"
    "  worker_id TEXT,"
    "  lease_id TEXT,"
    "  unix TEXT,"
    "  tcp TEXT,"
    "  restarts INTEGER NOT NULL DEFAULT 0,"
    "  max_restarts INTEGER NOT NULL,"
    "  max_task_retries INTEGER NOT NULL,"
    "  max_concurrency INTEGER NOT NULL,"
    "  cause TEXT,"
    "  reason TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX actors_live_name ON actors(namespace, name)"
    "  WHERE name IS NOT NULL AND state <> 'DEAD';"
    "CREATE INDEX actors_state ON actors(state, seq);",
    /* 3 → 4: Ray's package names (gcs://NAME) → the stored package */
    "CREATE TABLE ray_packages ("
    "  name TEXT PRIMARY KEY,"
    "  sha256 TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);",
    /* 4 → 5: placement groups (docs/placement-groups.md). `bundles` is a JSON
     * array of resource objects, `nodes` the node of each (null: not reserved),
     * `owner` the process it fate-shares with (null: detached). */
    "CREATE TABLE IF NOT EXISTS placement_groups ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  name TEXT,"
    "  owner TEXT,"
    "  strategy TEXT NOT NULL,"
    "  bundles TEXT NOT NULL,"
    "  nodes TEXT NOT NULL,"
    "  state TEXT NOT NULL,"
    "  reason TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  removed_at INTEGER);"
    "CREATE INDEX IF NOT EXISTS placement_groups_state ON placement_groups(state, seq);",
    /* 5 → 6: compiled DAGs as the GCS lists them (docs/dags.md#visible-state):
     * `doc` is the DAG's JSON object, the newest 1,000 kept. */
    "CREATE TABLE IF NOT EXISTS dags ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  doc TEXT NOT NULL);",
};

int gcs_db_version(sqlite3 *db)
{
    sqlite3_stmt *st = gcs_db_prepare(db, "PRAGMA user_version");
    int v = -1;
    if (st && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    gcs_db_finish(st);
    return v;
}

static int migrate(sqlite3 *db, char *err, size_t errlen)
{
    int have = gcs_db_version(db), want = (int)(sizeof migrations / sizeof migrations[0]);
    if (have > want) {
        snprintf(err, errlen, "database schema version %d is newer than this GCS knows (%d)", have,
                 want);
        return -1;
    }
    for (int v = have; v < want; v++) {
        char *msg = NULL, pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d;", v + 1);
        /* Each step and its version bump commit together or not at all. */
        int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, migrations[v], NULL, NULL, &msg);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, pragma, NULL, NULL, &msg);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            snprintf(err, errlen, "schema migration %d -> %d failed: %s", v, v + 1,
                     msg ? msg : sqlite3_errstr(rc));
            sqlite3_free(msg);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
        LOG_INFO("database migrated to schema version %d", v + 1);
    }
    return 0;
}

int gcs_db_open(sqlite3 **out, const char *path, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(
        path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path, sqlite3_errstr(rc));
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    rc = sqlite3_exec(db,
                      "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
                      NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot set up database %s: %s", path, msg ? msg : "");
        sqlite3_free(msg);
        sqlite3_close(db);
        return -1;
    }
    if (migrate(db, err, errlen) != 0) {
        sqlite3_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

/* Prepared statements, kept for the next use of the same SQL: preparing
 * costs more than running most of the GCS's statements (about 100 us on a
 * small VM, several times per actor creation). A statement is lent to one
 * user at a time; a second user of the same SQL meanwhile gets its own,
 * finalized when finished. Bounded: SQL beyond the first STMT_CACHE_MAX
 * texts is prepared each time. */
#define STMT_CACHE_MAX 256

typedef struct {
    sqlite3 *db;
    char *sql;
    uint64_t hash;
    sqlite3_stmt *st;
    bool lent;
} cached_stmt;

static cached_stmt stmt_cache[STMT_CACHE_MAX];
static size_t stmt_cached;
static pthread_mutex_t stmt_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t sql_hash(const char *sql)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

void gcs_db_close(sqlite3 *db)
{
    pthread_mutex_lock(&stmt_lock);
    for (size_t i = 0; i < stmt_cached;) {
        if (stmt_cache[i].db != db) {
            i++;
            continue;
        }
        sqlite3_finalize(stmt_cache[i].st);
        free(stmt_cache[i].sql);
        stmt_cache[i] = stmt_cache[--stmt_cached];
    }
    pthread_mutex_unlock(&stmt_lock);
    sqlite3_close(db);
}

sqlite3_stmt *gcs_db_prepare(sqlite3 *db, const char *sql)
{
    uint64_t h = sql_hash(sql);
    bool known = false;
    pthread_mutex_lock(&stmt_lock);
    for (size_t i = 0; i < stmt_cached; i++) {
        cached_stmt *c = &stmt_cache[i];
        if (c->hash != h || c->db != db || strcmp(c->sql, sql))
            continue;
        known = true;
        if (!c->lent) {
            c->lent = true;
            pthread_mutex_unlock(&stmt_lock);
            return c->st;
        }
        break;
    }
    pthread_mutex_unlock(&stmt_lock);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        LOG_ERROR("SQL prepare failed: %s: %s", sqlite3_errmsg(db), sql);
        sqlite3_finalize(st);
        return NULL;
    }
    pthread_mutex_lock(&stmt_lock);
    char *copy = known || stmt_cached == STMT_CACHE_MAX ? NULL : strdup(sql);
    if (copy)
        stmt_cache[stmt_cached++] =
            (cached_stmt){.db = db, .sql = copy, .hash = h, .st = st, .lent = true};
    pthread_mutex_unlock(&stmt_lock);
    return st;
}

void gcs_db_finish(sqlite3_stmt *st)
{
    if (!st)
        return;
    pthread_mutex_lock(&stmt_lock);
    for (size_t i = 0; i < stmt_cached; i++) {
        if (stmt_cache[i].st != st)
            continue;
        sqlite3_reset(st); /* ends its read of the database too */
        sqlite3_clear_bindings(st);
        stmt_cache[i].lent = false;
        pthread_mutex_unlock(&stmt_lock);
        return;
    }
    pthread_mutex_unlock(&stmt_lock);
    sqlite3_finalize(st);
}

void gcs_db_bind_text(sqlite3_stmt *st, int i, const char *text)
{
    if (text)
        sqlite3_bind_text(st, i, text, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

void gcs_db_bind_json(sqlite3_stmt *st, int i, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (text)
        sqlite3_bind_text(st, i, text, -1, free);
    else
        sqlite3_bind_null(st, i);
}

json_t *gcs_db_column_json(sqlite3_stmt *st, int i)
{
    const unsigned char *text = sqlite3_column_text(st, i);
    json_t *doc = text ? json_loads((const char *)text, 0, NULL) : NULL;
    return doc ? doc : json_null();
}

json_t *gcs_db_column_int_or_null(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return json_null();
    return json_integer(sqlite3_column_int64(st, i));
}

json_t *gcs_db_column_text_or_null(sqlite3_stmt *st, int i)
{
    const unsigned char *text = sqlite3_column_text(st, i);
    return text ? json_string((const char *)text) : json_null();
}

int gcs_db_exec_stmt(sqlite3_stmt *st)
{
    if (!st)
        return SQLITE_ERROR;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW && rc != SQLITE_CONSTRAINT)
        LOG_ERROR("SQL step failed: %s", sqlite3_errmsg(sqlite3_db_handle(st)));
    gcs_db_finish(st);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

static int column_index(sqlite3_stmt *st, const char *name)
{
    for (int i = 0; i < sqlite3_column_count(st); i++)
        if (!strcmp(sqlite3_column_name(st, i), name))
            return i;
    return -1;
}

json_t *gcs_db_page(sqlite3_stmt *st, const char *cursor_column, int64_t limit, gcs_db_row_fn *row,
                    void *ud, json_t *items)
{
    if (!st)
        return json_null();
    int col = column_index(st, cursor_column);
    int limit_param = sqlite3_bind_parameter_index(st, ":limit");
    if (col < 0 || !limit_param) {
        LOG_ERROR("a paginated query needs column %s and LIMIT :limit: %s", cursor_column,
                  sqlite3_sql(st));
        gcs_db_finish(st);
        return json_null();
    }
    sqlite3_bind_int64(st, limit_param, limit + 1);
    json_t *last = NULL, *next = NULL;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if ((int64_t)json_array_size(items) == limit) {
            next = json_incref(last);
            break;
        }
        json_array_append_new(items, row(st, ud));
        if ((int64_t)json_array_size(items) == limit)
            last = json_string((const char *)sqlite3_column_text(st, col));
    }
    gcs_db_finish(st);
    json_decref(last);
    return next ? next : json_null();
}
