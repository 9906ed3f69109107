/* The calls task code makes on its context (include/prism/task.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prism_internal.h"
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

void *prism_task_return_bytes(prism_task_ctx *ctx, size_t index, size_t len)
{
    if (!ctx || !ctx->returns || index >= ctx->nreturns) {
        prism__fail(PRISM_ERR_INVALID, "return %zu is not one of this call's", index);
        return NULL;
    }
    if (ctx->returns[index]) {
        prism__fail(PRISM_ERR_INVALID, "return %zu is set already", index);
        return NULL;
    }
    void *p = ctx->return_bytes ? ctx->return_bytes(ctx, index, len, &ctx->returns[index]) : NULL;
    if (p)
        return p;
    if (!ctx->made && !(ctx->made = calloc(ctx->nreturns, sizeof *ctx->made))) {
        prism__fail(PRISM_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    prism_value *v = prism__value_bytes_room(len);
    if (!v)
        return NULL;
    ctx->returns[index] = ctx->made[index] = v;
    return v->data;
}

void prism__task_ctx_settle(prism_task_ctx *ctx)
{
    if (!ctx->made) /* the common case, once a DAG hop: nothing to do */
        return;
    for (size_t i = 0; i < ctx->nreturns; i++)
        if (ctx->made[i] && ctx->returns[i] != ctx->made[i])
            prism_value_free(ctx->made[i]);
    free(ctx->made);
    ctx->made = NULL;
}
