/* The `prism job` subcommands, shared between job.c, job_submit.c and job_logs.c. */
#ifndef PRISM_CLI_JOB_H
#define PRISM_CLI_JOB_H

#include <jansson.h>
#include <stdbool.h>

#include "client.h"

int job_submit(int argc, char **argv); /* job_submit.c */
int job_logs(int argc, char **argv);   /* job_logs.c */

/* Writes the job's driver log to stdout; with `follow`, keeps writing until
 * the job has ended. Returns 0, or -1 after printing an error. */
int job_print_logs(cli_client *c, const char *id, bool follow);
/* GET /api/v1/jobs/{id}. Returns the job object, or NULL after printing an error. */
json_t *job_get(cli_client *c, const char *id);
/* Whether a job state is final: SUCCEEDED, FAILED or STOPPED. */
bool job_state_final(const char *state);

#endif
