/* The dashboard's static files, compiled in (the table is generated from
 * dashboard/ by embed_dashboard.cmake; dashboard.c serves it). */
#ifndef PRISM_GCS_DASHBOARD_H
#define PRISM_GCS_DASHBOARD_H

#include <stddef.h>

typedef struct gcs_dashboard_file {
    const char *name; /* "index.html": a plain file name, no directories */
    const unsigned char *data;
    size_t size;
    const char *etag; /* quoted, from a hash of the bytes */
} gcs_dashboard_file;

extern const gcs_dashboard_file gcs_dashboard_files[];
extern const size_t gcs_dashboard_nfiles;

#endif
