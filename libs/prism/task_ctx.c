/* The calls task code makes on its context (include/prism/task.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task_ctx.h"

prism_client *prism_task_client(prism_task_ctx *ctx) { return ctx->client(ctx); }

const char *prism_task_name(prism_task_ctx *ctx) { return ctx->name; }

prism_status prism_task_fail(prism_task_ctx *ctx, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(ctx->error);
    ctx->error = strdup(msg);
    return PRISM_ERR_TASK;
}
