/* Placement groups in the GCS (docs/placement-groups.md):
 * placement_groups.c (the model, placing, node death, removal) and
 * pg_api.c (REST). */
#ifndef PRISM_GCS_PGROUPS_H
#define PRISM_GCS_PGROUPS_H

#include "gcs.h"

#define PG_COLUMNS                                                                                 \
    "seq, id, name, strategy, bundles, nodes, state, reason, created_at, removed_at, owner"
#define PG_MAX_BUNDLES 256

extern const char *const gcs_pg_states[4];
extern const char *const gcs_pg_strategies[4];

/* One row of PG_COLUMNS as the PlacementGroup object; NULL out of memory. */
json_t *gcs_pg_row_json(sqlite3_stmt *st);
/* The group as JSON, or NULL when unknown (lock held / taken). */
json_t *gcs_pg_json_locked(gcs *g, const char *id);
json_t *gcs_pg_json(gcs *g, const char *id);
/* A new PENDING group of `bundles` (an array of resource objects); `owner`
 * (an owner address, or NULL: detached) removes it when it exits. Lock held. */
int gcs_pg_insert_locked(gcs *g, const char *id, const char *name, const char *owner,
                         const char *strategy, json_t *bundles);
/* Periodic: removes the groups whose owner no longer answers; prunes the
 * REMOVED ones past the newest 10000. */
void gcs_pgs_check_owners(gcs *g);
/* Periodic: asks the scheduler to place the groups that wait for bundles. */
void gcs_pgs_place(gcs *g);
/* The node died: the groups with bundles there become RESCHEDULING (lock held). */
void gcs_pgs_node_dead_locked(gcs *g, const char *node_id);
/* REMOVED: kills its actors and returns its bundles. -1 when unknown. No lock. */
int gcs_pg_remove(gcs *g, const char *id);
/* A node's report lists the bundles it holds (prism.sched.node): those of a
 * group removed or unknown, or placed elsewhere (a placement the GCS never
 * recorded), are returned. Takes the lock. */
void gcs_pgs_reconcile(gcs *g, const char *node_id, json_t *bundles);
/* bundle.return to a node agent: the group's bundle `index`, or all when NULL. */
void gcs_pg_return_bundles(gcs *g, const char *pg_id, const char *node_id, json_t *index);

void gcs_api_pgs_list(prism_http_req *req, void *ctx);
void gcs_api_pg_get(prism_http_req *req, void *ctx);
void gcs_api_pg_create(prism_http_req *req, void *ctx);
void gcs_api_pg_remove(prism_http_req *req, void *ctx);

#endif
