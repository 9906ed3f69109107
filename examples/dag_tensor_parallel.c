/* A tensor-parallel compiled DAG: the input goes to every shard at once and
 * a multi-output node gathers what they return, as a layer split over
 * several actors.
 *
 *   shards = [Counter(10), Counter(20), Counter(30), Counter(40)]
 *   dag = MultiOutput([s.add(input, rank) for rank, s in enumerate(shards)])
 *   # [x+10, x+21, x+32, x+43]
 *
 * Each shard's rank is a constant argument (prism_dag_constant): sent to
 * its actor once, at compile, and given to every call.
 *
 * Run it against a cluster (`prism up`), or as a job:
 *   prism job submit --wait -- build/bin/prism-example-dag-tensor-parallel */
#include <stdio.h>
#include <stdlib.h>

#include <prism/dag.h>

#define SHARDS 4

static int fail(const char *what)
{
    fprintf(stderr, "dag_tensor_parallel: %s: %s\n", what, prism_last_error());
    return 1;
}

static prism_value *number(long long x)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", x);
    return prism_value_json(text);
}

static int compile(prism_client *c, prism_actor **shards, prism_dag_compiled **d)
{
    prism_dag *g = NULL;
    prism_dag_node *in = NULL, *parts[SHARDS], *all = NULL;
    prism_status s = prism_dag_create(&g);
    if (s == PRISM_OK)
        s = prism_dag_input(g, &in);
    for (int i = 0; s == PRISM_OK && i < SHARDS; i++) {
        prism_value *rank = number(i);
        prism_dag_node *args[2] = {in, NULL};
        s = prism_dag_constant(g, rank, &args[1]); /* copies it */
        prism_value_free(rank);
        if (s == PRISM_OK)
            s = prism_dag_bind(g, shards[i], "add", args, 2, &parts[i]); /* add(input, rank) */
    }
    if (s == PRISM_OK)
        s = prism_dag_multi_output(g, parts, SHARDS, &all);
    if (s == PRISM_OK)
        s = prism_dag_compile(c, g, NULL, d);
    prism_dag_free(g);
    return s == PRISM_OK ? 0 : fail("compile");
}

/* One execution: the gathered list, checked. */
static int execute(prism_dag_compiled *d, long long x)
{
    prism_value *inv = number(x), *out = NULL;
    prism_dag_future *f = NULL;
    prism_status s = prism_dag_execute(d, inv, &f);
    prism_value_free(inv);
    if (s != PRISM_OK)
        return fail("execute");
    if (prism_dag_get(f, 10000, &out) != PRISM_OK)
        return fail("get");
    printf("execute(%lld) -> [", x);
    int wrong = prism_value_list_size(out) != SHARDS;
    for (size_t i = 0; i < prism_value_list_size(out); i++) {
        const char *t = prism_value_json_text(prism_value_list_get(out, i));
        printf("%s%s", i ? ", " : "", t);
        wrong |= atoll(t) != x + 10 * (long long)(i + 1) + (long long)i;
    }
    printf("]\n");
    prism_value_free(out);
    return wrong ? fail("a wrong result") : 0;
}

int main(void)
{
    prism_client *c = NULL;
    if (prism_connect(NULL, &c) != PRISM_OK)
        return fail("connect");
    prism_actor *shards[SHARDS] = {NULL};
    prism_dag_compiled *d = NULL;
    int rc = 0;
    for (int i = 0; rc == 0 && i < SHARDS; i++) {
        prism_value *start = number(10 * (i + 1));
        prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
        o.num_cpus = 0.5; /* so that the demo's small nodes hold every shard */
        if (prism_actor_create(c, "builtin", "Counter", &start, 1, &o, &shards[i]) != PRISM_OK)
            rc = fail("create a shard");
        prism_value_free(start);
    }
    if (rc == 0)
        rc = compile(c, shards, &d);
    for (long long x = 0; rc == 0 && x < 5; x++)
        rc = execute(d, x * 100);
    if (prism_dag_teardown(d) != PRISM_OK && rc == 0)
        rc = fail("teardown");
    for (int i = 0; i < SHARDS; i++)
        prism_actor_release(shards[i]);
    prism_disconnect(c);
    return rc;
}
