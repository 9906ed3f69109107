/* The GCS REST API: one table, documented in openapi/gcs.yaml. Every route
 * needs the token but those marked PRISM_HTTP_PUBLIC: the dashboard's static
 * files, which hold no data (the page asks the API, with the token), and the
 * API reference and spec. */
#include "gcs.h"
#include "pgroups.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

const prism_http_route gcs_routes[] = {
    {"GET", "/api/v1/cluster", gcs_api_cluster, 0},
    {"GET", "/api/v1/services", gcs_api_services, 0},
    {"GET", "/api/v1/nodes", gcs_api_nodes_list, 0},
    {"GET", "/api/v1/nodes/{id}", gcs_api_node_get, 0},
    {"GET", "/api/v1/nodes/{id}/workers", gcs_api_node_workers, 0},
    {"POST", "/api/v1/jobs", gcs_api_jobs_submit, 1 * MiB},
    {"GET", "/api/v1/jobs", gcs_api_jobs_list, 0},
    {"GET", "/api/v1/jobs/{id}", gcs_api_job_get, 0},
    {"DELETE", "/api/v1/jobs/{id}", gcs_api_job_delete, 0},
    {"GET", "/api/v1/jobs/{id}/logs", gcs_api_job_logs, 0},
    {"POST", "/api/v1/jobs/{id}/stop", gcs_api_job_stop, 0},
    {"GET", "/api/v1/kv/{namespace}", gcs_api_kv_list, 0},
    {"GET", "/api/v1/kv/{namespace}/{key}", gcs_api_kv_get, 0},
    {"PUT", "/api/v1/kv/{namespace}/{key}", gcs_api_kv_put, 0 /* set from --max-kv-value-size */},
    {"DELETE", "/api/v1/kv/{namespace}/{key}", gcs_api_kv_delete, 0},
    {"POST", "/api/v1/packages", gcs_api_package_put, 0 /* set from --max-package-size */},
    {"GET", "/api/v1/packages/{sha256}", gcs_api_package_get, 0},
    {"POST", "/api/v1/tasks", gcs_api_tasks_submit, 1 * MiB},
    {"GET", "/api/v1/tasks", gcs_api_tasks_list, 0},
    {"GET", "/api/v1/objects", gcs_api_objects_list, 0},
    {"GET", "/api/v1/objects/{id}", gcs_api_object_get, 0},
    {"DELETE", "/api/v1/objects/{id}", gcs_api_object_delete, 0},
    {"GET", "/api/v1/actors", gcs_api_actors_list, 0},
    {"GET", "/api/v1/actors/{id}", gcs_api_actor_get, 0},
    {"POST", "/api/v1/actors/{id}/kill", gcs_api_actor_kill, 4 * KiB},
    {"POST", "/api/v1/placement_groups", gcs_api_pg_create, 64 * KiB},
    {"GET", "/api/v1/placement_groups", gcs_api_pgs_list, 0},
    {"GET", "/api/v1/placement_groups/{id}", gcs_api_pg_get, 0},
    {"DELETE", "/api/v1/placement_groups/{id}", gcs_api_pg_remove, 0},
    {"GET", "/api/v1/dags", gcs_api_dags_list, 0},
    {"GET", "/api/v1/dags/{id}", gcs_api_dag_get, 0},
    /* datasets: forwarded to the dataservice (a plan is at most 16 MiB) */
    {"POST", "/api/v1/datasets", gcs_api_datasets_proxy, 16 * MiB},
    {"GET", "/api/v1/datasets", gcs_api_datasets_proxy, 0},
    {"GET", "/api/v1/datasets/{id}", gcs_api_datasets_proxy, 0},
    {"POST", "/api/v1/datasets/{id}/stop", gcs_api_datasets_proxy, 0},
    {"POST", "/api/v1/datasets/{id}/epochs", gcs_api_datasets_proxy, 0},
    {"GET", "/api/v1/datasets/{id}/rows", gcs_api_datasets_proxy, 0},
    {"GET", "/api/v1/datasets/{id}/count", gcs_api_datasets_proxy, 0},
    {"POST", "/api/v1/datasets/{id}/blocks/next", gcs_api_datasets_proxy, 0},
    {"POST", "/api/v1/datasets/{id}/blocks/release", gcs_api_datasets_proxy, 0},
    /* the dashboard's data: task timeline (timeline.c), recent figures (history.c) */
    {"GET", "/api/v1/timeline", gcs_api_timeline, 0},
    {"GET", "/api/v1/metrics/history", gcs_api_metrics_history, 0},
    /* the dashboard (dashboard.c) */
    {"GET", "/", gcs_dashboard_index, PRISM_HTTP_PUBLIC},
    {"GET", "/dashboard/{file}", gcs_dashboard_file_get, PRISM_HTTP_PUBLIC},
    /* the API reference and the spec (apidocs.c) */
    {"GET", "/api/docs", gcs_api_docs, PRISM_HTTP_PUBLIC},
    {"GET", "/api/openapi.yaml", gcs_api_openapi_spec, PRISM_HTTP_PUBLIC},
    /* Ray's Jobs REST API */
    {"GET", "/api/version", gcs_ray_version, 0},
    {"POST", "/api/jobs", gcs_ray_jobs_submit, 1 * MiB},
    {"GET", "/api/jobs", gcs_ray_jobs_list, 0},
    {"GET", "/api/jobs/{id}", gcs_ray_job_get, 0},
    {"DELETE", "/api/jobs/{id}", gcs_ray_job_delete, 0},
    {"POST", "/api/jobs/{id}/stop", gcs_ray_job_stop, 0},
    {"GET", "/api/jobs/{id}/logs", gcs_ray_job_logs, 0},
    {"GET", "/api/jobs/{id}/logs/tail", gcs_ray_job_logs_tail, 0}, /* a WebSocket */
    {"GET", "/api/packages/{protocol}/{name}", gcs_ray_package_get, 0},
    {"PUT", "/api/packages/{protocol}/{name}", gcs_ray_package_put,
     0 /* set from --max-package-size */},
};
const size_t gcs_nroutes = sizeof gcs_routes / sizeof gcs_routes[0];
