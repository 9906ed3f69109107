/* A job driver for the container tests, built against the image's libprism
 * (as a user builds theirs against the release) and run inside the cluster:
 *
 *   compose-driver create NAME    a detached Counter actor named NAME; inc -> 1
 *   compose-driver call NAME N    the named actor's inc answers N
 *
 * Detached, the actor outlives the job that made it, so a later job (after
 * the GCS restarted, say) finds it by name. Exit 0 when every answer is right. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <prism/prism.h>

static int fail(const char *what)
{
    fprintf(stderr, "compose-driver: %s: %s\n", what, prism_last_error());
    return 1;
}

/* inc on the actor, whose answer must be `want` */
static int inc(prism_client *c, prism_actor *a, long want)
{
    prism_ref *r = NULL;
    prism_value *v = NULL;
    int rc = 0;
    if (prism_actor_call(c, a, "inc", NULL, 0, 1, &r) != PRISM_OK)
        rc = fail("call inc");
    else if (prism_get(c, r, 30000, &v) != PRISM_OK)
        rc = fail("get inc");
    else {
        const char *text = prism_value_json_text(v);
        printf("inc -> %s\n", text ? text : "(not JSON)");
        rc = text && strtol(text, NULL, 10) == want ? 0 : 1;
    }
    prism_value_free(v);
    prism_ref_release(r);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "create") != 0 && strcmp(argv[1], "call") != 0) ||
        (!strcmp(argv[1], "call") && argc != 4)) {
        fprintf(stderr, "usage: compose-driver create NAME | call NAME N\n");
        return 2;
    }
    prism_client *c = NULL;
    if (prism_connect(NULL, &c) != PRISM_OK)
        return fail("connect");
    prism_actor *a = NULL;
    int rc;
    if (!strcmp(argv[1], "create")) {
        prism_actor_options o;
        prism_actor_options_init(&o);
        o.name = argv[2];
        o.detached = true;
        rc = prism_actor_create(c, "builtin", "Counter", NULL, 0, &o, &a) != PRISM_OK
                 ? fail("create the actor")
                 : inc(c, a, 1);
    } else {
        rc = prism_actor_get(c, argv[2], NULL, &a) != PRISM_OK
                 ? fail("find the actor")
                 : inc(c, a, strtol(argv[3], NULL, 10));
    }
    if (a)
        printf("actor %s\n", prism_actor_id(a));
    prism_actor_release(a);
    prism_disconnect(c);
    return rc;
}
