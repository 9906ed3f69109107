/* prism dashboard: the address of the cluster's dashboard (the GCS serves it
 * at /: docs/dashboard.md), checked against the cluster with the token. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "client.h"

static int show(cli_client *c, const cli_parsed *p, void *ud)
{
    /* The token is what the page asks for: say now when it would be refused. */
    json_t *doc = NULL;
    if (cli_call(c, "GET", "/api/v1/cluster", NULL, &doc) != 0)
        return -1;
    json_decref(doc);
    size_t n = strlen(c->address);
    printf("%s%s\n", c->address, n && c->address[n - 1] == '/' ? "" : "/");
    fprintf(stderr,
            "Open it in a browser and sign in with the cluster token "
            "(the one this command used: --token, PRISM_TOKEN or %s/token).\n",
            cli_home());
    return 0;
}

int cmd_dashboard(int argc, char **argv)
{
    cli_command cmd = {.usage = "prism dashboard",
                       .summary = "Prints the URL of the cluster's dashboard, a web page the "
                                  "GCS serves, after checking that the cluster takes the token."};
    return cli_command_run(&cmd, argc, argv, show, NULL);
}
