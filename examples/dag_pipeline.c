/* A pipeline-parallel compiled DAG: each stage takes the previous one's
 * output, as the layers of a model split over several actors.
 *
 *   stages = [Counter(1), Counter(2), Counter(3), Counter(4)]
 *   dag = input; for s in stages: dag = s.add(dag)       # x + 1 + 2 + 3 + 4
 *
 * Compiled once, then executed 10,000 times with 8 executions in flight
 * (while stage 4 works on execution k, stage 3 works on k + 1, ...).
 * Run it against a cluster (`prism up`), or as a job:
 *   prism job submit --wait -- build/bin/prism-example-dag-pipeline */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <prism/dag.h>

#define STAGES 4
#define EXECUTIONS 10000
#define INFLIGHT 8

static int fail(const char *what)
{
    fprintf(stderr, "dag_pipeline: %s: %s\n", what, prism_last_error());
    return 1;
}

static prism_value *number(long long x)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", x);
    return prism_value_json(text);
}

static int make_stages(prism_client *c, prism_actor **stages)
{
    for (int i = 0; i < STAGES; i++) {
        prism_value *start = number(i + 1);
        prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
        o.num_cpus = 0.5; /* a stage mostly waits for the previous one: two share a CPU */
        prism_status s = prism_actor_create(c, "builtin", "Counter", &start, 1, &o, &stages[i]);
        prism_value_free(start);
        if (s != PRISM_OK)
            return fail("create a stage");
    }
    return 0;
}

static int compile(prism_client *c, prism_actor **stages, prism_dag_compiled **d)
{
    prism_dag *g = NULL;
    prism_dag_node *n = NULL;
    prism_status s = prism_dag_create(&g);
    if (s == PRISM_OK)
        s = prism_dag_input(g, &n);
    for (int i = 0; s == PRISM_OK && i < STAGES; i++)
        s = prism_dag_bind(g, stages[i], "add", &n, 1, &n); /* dag = stage.add(dag) */
    prism_dag_options o = PRISM_DAG_OPTIONS_INIT;
    o.max_inflight = INFLIGHT;
    if (s == PRISM_OK)
        s = prism_dag_compile(c, g, &o, d);
    prism_dag_free(g);
    return s == PRISM_OK ? 0 : fail("compile");
}

/* Keeps INFLIGHT executions going; checks each result (x + 1 + 2 + 3 + 4). */
static int run(prism_dag_compiled *d)
{
    prism_dag_future *f[INFLIGHT];
    long long wrong = 0;
    for (long long x = 0; x < EXECUTIONS + INFLIGHT; x++) {
        if (x >= INFLIGHT) {
            /* Read where it lies in the DAG's output channel: the DAG keeps
             * it until the next get, so nothing to copy or free. */
            const prism_value *out = NULL;
            if (prism_dag_get_in_place(f[x % INFLIGHT], 10000, &out) != PRISM_OK)
                return fail("get");
            wrong += atoll(prism_value_json_text(out)) != x - INFLIGHT + 10;
            if (x - INFLIGHT < 3)
                printf("execute(%lld) -> %s\n", x - INFLIGHT, prism_value_json_text(out));
        }
        if (x < EXECUTIONS) {
            prism_value *in = number(x);
            prism_status s = prism_dag_execute(d, in, &f[x % INFLIGHT]);
            prism_value_free(in);
            if (s != PRISM_OK)
                return fail("execute");
        }
    }
    if (wrong)
        fprintf(stderr, "dag_pipeline: %lld wrong results\n", wrong);
    return wrong ? 1 : 0;
}

int main(void)
{
    prism_client *c = NULL;
    if (prism_connect(NULL, &c) != PRISM_OK)
        return fail("connect");
    prism_actor *stages[STAGES] = {NULL};
    prism_dag_compiled *d = NULL;
    int rc = make_stages(c, stages);
    if (rc == 0)
        rc = compile(c, stages, &d);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (rc == 0)
        rc = run(d);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3;
    if (rc == 0)
        printf("%d executions through %d stages: %.1f us each\n", EXECUTIONS, STAGES,
               us / EXECUTIONS);
    if (prism_dag_teardown(d) != PRISM_OK && rc == 0)
        rc = fail("teardown");
    for (int i = 0; i < STAGES; i++)
        prism_actor_release(stages[i]);
    prism_disconnect(c);
    return rc;
}
