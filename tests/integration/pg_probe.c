/* A driver for the placement group tests: each subcommand runs one scenario
 * against the cluster in PRISM_ADDRESS/PRISM_TOKEN through the C API,
 * prints what it saw, and exits 0 only when it was right. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <prism/prism.h>

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "probe: " __VA_ARGS__);                                                \
            fprintf(stderr, " (%s)\n", prism_last_error());                                        \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

#define WAIT_MS 60000

static const char *const strategies[] = {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"};

static int strategy_of(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, strategies[i]))
            return i;
    return -1;
}

/* inc on the actor; its answer, or -1 on failure. */
static double inc(prism_client *c, prism_actor *a)
{
    prism_ref *r = NULL;
    prism_value *v = NULL;
    double x = -1;
    if (prism_actor_call(c, a, "inc", NULL, 0, 1, &r) == PRISM_OK &&
        prism_get(c, r, WAIT_MS, &v) == PRISM_OK && prism_value_json_text(v))
        x = atof(prism_value_json_text(v));
    prism_value_free(v);
    prism_ref_release(r);
    return x;
}

static void wait_line(void)
{
    char line[64];
    if (!fgets(line, sizeof line, stdin)) {
    }
}

static prism_status echo_in(prism_client *c, const prism_placement_group *pg, int64_t index)
{
    prism_task_options o = PRISM_TASK_OPTIONS_INIT;
    o.placement_group = pg;
    o.bundle_index = index;
    prism_value *arg = prism_value_json("7");
    prism_ref *r = NULL;
    prism_value *v = NULL;
    prism_status s = prism_submit(c, "builtin", "echo", &arg, 1, &o, &r);
    if (s == PRISM_OK)
        s = prism_get(c, r, WAIT_MS, &v);
    if (s == PRISM_OK && (!prism_value_json_text(v) || strcmp(prism_value_json_text(v), "7")))
        s = PRISM_ERR_INTERNAL;
    prism_value_free(v);
    prism_value_free(arg);
    prism_ref_release(r);
    return s;
}

/* api: create, wait, state; a task and an actor in the group; the
 * argument errors; a group that cannot fit times out with its reason;
 * removal kills the group's actor. */
static int api(prism_client *c)
{
    prism_bundle b[2] = {PRISM_BUNDLE_INIT, PRISM_BUNDLE_INIT};
    b[1].num_cpus = 0.5;
    b[1].resources = "{\"CPU\": 0.5}"; /* num_cpus wins over the same name */
    prism_placement_group_options po = PRISM_PLACEMENT_GROUP_OPTIONS_INIT;
    po.name = "probe";
    prism_placement_group *pg = NULL;
    CHECK(prism_placement_group_create(c, b, 2, PRISM_PG_STRICT_PACK, &po, &pg) == PRISM_OK,
          "create");
    CHECK(prism_placement_group_wait(c, pg, WAIT_MS) == PRISM_OK, "wait");
    prism_pg_state st;
    char reason[256] = "x";
    CHECK(prism_placement_group_state(c, pg, &st, reason, sizeof reason) == PRISM_OK &&
              st == PRISM_PG_CREATED && !reason[0],
          "state %d '%s'", (int)st, reason);
    CHECK(echo_in(c, pg, 0) == PRISM_OK && echo_in(c, pg, -1) == PRISM_OK, "a task in the group");
    CHECK(echo_in(c, pg, -2) == PRISM_ERR_INVALID, "bundle_index -2 is refused");

    prism_actor_options ao = PRISM_ACTOR_OPTIONS_INIT;
    ao.num_cpus = 0.5;
    ao.placement_group = pg;
    ao.bundle_index = 1;
    prism_actor *a = NULL;
    CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, &ao, &a) == PRISM_OK, "actor");
    CHECK(inc(c, a) == 1, "the actor in bundle 1 answers");
    printf("group %s actor %s\n", prism_placement_group_id(pg), prism_actor_id(a));
    fflush(stdout);

    prism_task_options bad = PRISM_TASK_OPTIONS_INIT;
    bad.reserved[5] = 1;
    prism_ref *r = NULL;
    CHECK(prism_submit(c, "builtin", "echo", NULL, 0, &bad, &r) == PRISM_ERR_INVALID, "reserved");
    prism_bundle none = PRISM_BUNDLE_INIT;
    CHECK(prism_placement_group_create(c, &none, 0, PRISM_PG_PACK, NULL, &pg) == PRISM_ERR_INVALID,
          "no bundles");
    none.resources = "[1]";
    prism_placement_group *big = NULL;
    CHECK(prism_placement_group_create(c, &none, 1, PRISM_PG_PACK, NULL, &big) == PRISM_ERR_INVALID,
          "bad resources");
    none.resources = NULL;
    none.num_cpus = 1000;
    CHECK(prism_placement_group_create(c, &none, 1, PRISM_PG_PACK, NULL, &big) == PRISM_OK,
          "create a group too big");
    CHECK(prism_placement_group_wait(c, big, 1500) == PRISM_ERR_TIMEOUT &&
              strstr(prism_last_error(), "cannot hold"),
          "a group too big times out with its reason");
    CHECK(prism_placement_group_remove(c, big) == PRISM_OK, "remove the big one");
    CHECK(prism_placement_group_wait(c, big, 1000) == PRISM_ERR_INVALID, "wait after remove");
    CHECK(prism_placement_group_state(c, big, &st, NULL, 0) == PRISM_OK && st == PRISM_PG_REMOVED,
          "REMOVED");
    prism_placement_group_release(big);

    /* A task running in the group when it is removed is killed with it. */
    prism_task_options so = PRISM_TASK_OPTIONS_INIT;
    so.placement_group = pg;
    so.bundle_index = 0;
    prism_value *ms = prism_value_json("60000");
    prism_ref *slow = NULL;
    prism_value *got = NULL;
    CHECK(prism_submit(c, "builtin", "sleep", &ms, 1, &so, &slow) == PRISM_OK, "submit sleep");
    prism_value_free(ms);
    CHECK(prism_get(c, slow, 1000, &got) == PRISM_ERR_TIMEOUT, "the sleep is running");
    CHECK(prism_placement_group_remove(c, pg) == PRISM_OK, "remove");
    prism_status s = prism_get(c, slow, 30000, &got);
    CHECK(s != PRISM_OK && s != PRISM_ERR_TIMEOUT, "the task running in the group was killed: %s",
          prism_status_text(s));
    prism_value_free(got);
    prism_ref_release(slow);
    CHECK(inc(c, a) < 0, "the group's actor died with it");
    prism_actor *late = NULL;
    CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, &ao, &late) != PRISM_OK &&
              strstr(prism_last_error(), "was removed"),
          "no actor is created into a removed group");
    CHECK(echo_in(c, pg, 0) == PRISM_ERR_INVALID && strstr(prism_last_error(), "was removed"),
          "a task in a removed group fails, it does not wait");
    prism_placement_group *gone = NULL;
    CHECK(prism_placement_group_open(c, "0123", &gone) == PRISM_ERR_INVALID, "open a bad ID");
    CHECK(prism_placement_group_open(c, "0123456789abcdef0123456789abcdef", &gone) == PRISM_OK &&
              prism_placement_group_state(c, gone, &st, NULL, 0) == PRISM_ERR_INVALID,
          "an unknown group");
    prism_placement_group_release(gone);
    prism_actor_release(a);
    prism_placement_group_release(pg);
    printf("api ok\n");
    return 0;
}

/* actors N STRATEGY [RESTARTS]: a group of N bundles of CPU 1 and an actor
 * in each bundle; prints the group and the actors, then after a line on
 * stdin (a node died meanwhile) calls each again. */
static int actors(prism_client *c, int n, const char *strategy, int restarts)
{
    int k = strategy_of(strategy);
    CHECK(n > 0 && n <= 16 && k >= 0, "usage: actors N PACK|SPREAD|STRICT_PACK|STRICT_SPREAD");
    prism_bundle b[16];
    for (int i = 0; i < n; i++)
        b[i] = (prism_bundle)PRISM_BUNDLE_INIT;
    prism_placement_group *pg = NULL;
    CHECK(prism_placement_group_create(c, b, (size_t)n, (prism_pg_strategy)k, NULL, &pg) ==
              PRISM_OK,
          "create");
    CHECK(prism_placement_group_wait(c, pg, WAIT_MS) == PRISM_OK, "wait");
    printf("group %s\n", prism_placement_group_id(pg));
    prism_actor *a[16];
    for (int i = 0; i < n; i++) {
        prism_actor_options o = PRISM_ACTOR_OPTIONS_INIT;
        o.placement_group = pg;
        o.bundle_index = i;
        o.max_restarts = restarts;
        o.max_task_retries = restarts ? -1 : 0;
        CHECK(prism_actor_create(c, "builtin", "Counter", NULL, 0, &o, &a[i]) == PRISM_OK,
              "actor %d", i);
        CHECK(inc(c, a[i]) == 1, "actor %d answers", i);
        printf("actor %d %s\n", i, prism_actor_id(a[i]));
    }
    fflush(stdout);
    wait_line();
    int alive = 0;
    for (int i = 0; i < n; i++) {
        alive += inc(c, a[i]) > 0;
        prism_actor_release(a[i]);
    }
    printf("alive %d\n", alive);
    prism_placement_group_release(pg);
    return 0;
}

/* leave: a group that fate-shares with this process and a detached one,
 * both CREATED; prints them and exits without removing either. */
static int leave(prism_client *c)
{
    prism_bundle b = PRISM_BUNDLE_INIT;
    b.num_cpus = 0.25;
    prism_placement_group_options o = PRISM_PLACEMENT_GROUP_OPTIONS_INIT;
    prism_placement_group *mine = NULL, *kept = NULL;
    CHECK(prism_placement_group_create(c, &b, 1, PRISM_PG_PACK, &o, &mine) == PRISM_OK, "mine");
    o.detached = true;
    CHECK(prism_placement_group_create(c, &b, 1, PRISM_PG_PACK, &o, &kept) == PRISM_OK, "kept");
    CHECK(prism_placement_group_wait(c, mine, WAIT_MS) == PRISM_OK &&
              prism_placement_group_wait(c, kept, WAIT_MS) == PRISM_OK,
          "wait");
    printf("mine %s kept %s\n", prism_placement_group_id(mine), prism_placement_group_id(kept));
    prism_placement_group_release(mine);
    prism_placement_group_release(kept);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: pg_probe api|leave|actors N STRATEGY [RESTARTS]\n");
        return 2;
    }
    prism_client *c;
    if (prism_connect(NULL, &c) != PRISM_OK) {
        fprintf(stderr, "probe: connect: %s\n", prism_last_error());
        return 1;
    }
    int rc = !strcmp(argv[1], "api")     ? api(c)
             : !strcmp(argv[1], "leave") ? leave(c)
             : !strcmp(argv[1], "actors") && argc > 3
                 ? actors(c, atoi(argv[2]), argv[3], argc > 4 ? atoi(argv[4]) : 0)
                 : 2;
    prism_disconnect(c);
    return rc;
}
