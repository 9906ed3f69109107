/* The GCS database: SQLite in WAL mode with versioned schema migrations.
 * Every statement is prepared with bound parameters; none is built from text. */
#ifndef PRISM_GCS_DB_H
#define PRISM_GCS_DB_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* Opens (creating if needed) and migrates to the latest schema version. */
int gcs_db_open(sqlite3 **out, const char *path, char *err, size_t errlen);
void gcs_db_close(sqlite3 *db);
/* The schema version the database is at (PRAGMA user_version). */
int gcs_db_version(sqlite3 *db);

/* Prepares `sql`, or lends the statement kept from its last use; NULL on
 * error (logged: a failure here is a bug). Give it back with gcs_db_finish,
 * never sqlite3_finalize. */
sqlite3_stmt *gcs_db_prepare(sqlite3 *db, const char *sql);
/* Ends a statement of gcs_db_prepare: resets it for its next user (or
 * finalizes one that is not kept). NULL is ignored. */
void gcs_db_finish(sqlite3_stmt *st);
/* Binds text, or NULL when `text` is NULL. */
void gcs_db_bind_text(sqlite3_stmt *st, int i, const char *text);
/* Binds `doc` as compact JSON text, or NULL. */
void gcs_db_bind_json(sqlite3_stmt *st, int i, json_t *doc);
/* A column as JSON: parsed text, an integer, or null. New reference. */
json_t *gcs_db_column_json(sqlite3_stmt *st, int i);
json_t *gcs_db_column_int_or_null(sqlite3_stmt *st, int i);
json_t *gcs_db_column_text_or_null(sqlite3_stmt *st, int i);
/* Runs a statement that returns no rows, then finishes it. Returns SQLITE_DONE on success. */
int gcs_db_exec_stmt(sqlite3_stmt *st);

/* Makes the list element of the current row of a statement; NULL leaves the row out. */
typedef json_t *gcs_db_row_fn(sqlite3_stmt *st, void *ud);
/* One page of a keyset-paginated list, the only loop of its kind. `st`
 * selects the rows after the cursor in list order, `cursor_column` (the
 * unique column the list is ordered by) among them, and ends with
 * `LIMIT :limit`, which this binds to `limit` + 1: the one more row tells
 * whether a next page exists. Appends row(st, ud) of the first `limit` rows
 * to `items` and returns the next page's cursor, the text of `cursor_column`
 * in the page's last row, or JSON null on the last page. Finishes `st`. */
json_t *gcs_db_page(sqlite3_stmt *st, const char *cursor_column, int64_t limit, gcs_db_row_fn *row,
                    void *ud, json_t *items);

#endif
