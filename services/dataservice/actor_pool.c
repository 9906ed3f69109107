/* A stage's actor pool (docs/datasets.md#actor-pools): actors of the
 * built-in class DataStage, each made with the stage program (its
 * constructor runs the package functions' setup once) and given one bundle
 * of blocks at a time (method `run`, which is data_map_stage). The pool
 * starts with min_size actors, grows by one while input waits and every
 * actor is busy (up to max_size), and lets actors idle for
 * DS_POOL_IDLE_MS go down to min_size. Used by the executor's thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataservice.h"
#include "prism_time.h"

struct ds_pool {
    prism_client *c;
    prism_value *program; /* the constructor's argument */
    prism_actor_options o;
    char *resources;
    int64_t min, max;
    ds_pool_actor *v;
    size_t n, cap;
    int64_t created;
};

ds_pool *ds_pool_create(prism_client *c, const prism_plan_stage *info, const char *program,
                        const char *resources, int64_t max_cap, char *err, size_t n)
{
    ds_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->program = prism_value_json(program)) ||
        (resources && !(p->resources = strdup(resources)))) {
        ds_pool_destroy(p);
        snprintf(err, n, "out of memory");
        return NULL;
    }
    p->c = c;
    prism_actor_options_init(&p->o);
    p->o.num_cpus = info->num_cpus;
    p->o.num_gpus = info->num_gpus;
    p->o.memory = info->memory;
    p->o.resources = p->resources;
    /* a worker that dies takes its actor: made again (the setup runs again),
     * the bundle it held pushed again */
    p->o.max_restarts = 3;
    p->o.max_task_retries = 3;
    p->min = info->min_size > 0 ? info->min_size : 1;
    p->max = info->max_size > 0 && info->max_size < max_cap ? info->max_size : max_cap;
    if (p->max < p->min)
        p->max = p->min;
    while ((int64_t)p->n < p->min)
        if (ds_pool_grow(p, err, n) != 0) {
            ds_pool_destroy(p);
            return NULL;
        }
    return p;
}

int ds_pool_grow(ds_pool *p, char *err, size_t n)
{
    if ((int64_t)p->n >= p->max)
        return -1;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 4;
        ds_pool_actor *v = realloc(p->v, cap * sizeof *v);
        if (!v) {
            snprintf(err, n, "out of memory");
            return -1;
        }
        p->v = v;
        p->cap = cap;
    }
    prism_actor *a = NULL;
    if (prism_actor_create(p->c, "builtin", "DataStage", &p->program, 1, &p->o, &a) != PRISM_OK) {
        snprintf(err, n, "cannot make an actor of the pool: %s", prism_last_error());
        return -1;
    }
    p->v[p->n++] = (ds_pool_actor){a, false, prism_mono_ms()};
    p->created++;
    return 0;
}

int ds_pool_idle(const ds_pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        if (!p->v[i].busy)
            return (int)i;
    return -1;
}

bool ds_pool_can_grow(const ds_pool *p) { return (int64_t)p->n < p->max; }

prism_actor *ds_pool_take(ds_pool *p, int i)
{
    p->v[i].busy = true;
    return p->v[i].actor;
}

void ds_pool_give_back(ds_pool *p, prism_actor *a)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].actor == a) {
            p->v[i].busy = false;
            p->v[i].idle_since = prism_mono_ms();
        }
}

void ds_pool_shrink(ds_pool *p, int64_t now)
{
    for (size_t i = 0; i < p->n && (int64_t)p->n > p->min;) {
        if (p->v[i].busy || now - p->v[i].idle_since < DS_POOL_IDLE_MS) {
            i++;
            continue;
        }
        prism_actor_kill(p->c, p->v[i].actor, true);
        prism_actor_release(p->v[i].actor);
        p->v[i] = p->v[--p->n];
    }
}

void ds_pool_counts(const ds_pool *p, int64_t *alive, int64_t *busy, int64_t *created)
{
    *alive = p ? (int64_t)p->n : 0;
    *busy = 0;
    for (size_t i = 0; p && i < p->n; i++)
        *busy += p->v[i].busy;
    *created = p ? p->created : 0;
}

void ds_pool_destroy(ds_pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        prism_actor_kill(p->c, p->v[i].actor, true);
        prism_actor_release(p->v[i].actor);
    }
    free(p->v);
    prism_value_free(p->program);
    free(p->resources);
    free(p);
}
