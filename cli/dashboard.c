/* prism dashboard: the address of the cluster's dashboard (the GCS serves it
 * at /: docs/dashboard.md), checked against the cluster with the token, and
 * opened in the desktop's browser with --open. */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "args.h"
#include "cli.h"
#include "client.h"
#include "proc.h"

/* Hands `url` to xdg-open, the desktop's opener, and waits for it (it returns
 * once the browser has the URL). Returns 0, or -1 when there is none or it failed. */
static int open_in_browser(const char *url)
{
    char opener[4096];
    if (proc_find_system("xdg-open", opener, sizeof opener) != 0)
        return -1;
    char *argv[] = {opener, (char *)url, NULL};
    pid_t pid;
    if (proc_spawn(argv, "/dev/null", &pid) != 0)
        return -1;
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int show(cli_client *c, const cli_parsed *p, void *ud)
{
    const bool *open = ud;
    /* The token is what the page asks for: say now when it would be refused. */
    json_t *doc = NULL;
    if (cli_call(c, "GET", "/api/v1/cluster", NULL, &doc) != 0)
        return -1;
    json_decref(doc);
    size_t n = strlen(c->address);
    char url[4096];
    snprintf(url, sizeof url, "%s%s", c->address, n && c->address[n - 1] == '/' ? "" : "/");
    printf("%s\n", url);
    fflush(stdout);
    if (*open && open_in_browser(url) != 0)
        fprintf(stderr, "prism: no browser could be opened (xdg-open is missing or failed); "
                        "open the address above yourself.\n");
    fprintf(stderr,
            "Open it in a browser and sign in with the cluster token "
            "(the one this command used: --token, PRISM_TOKEN or %s/token).\n",
            cli_home());
    return 0;
}

int cmd_dashboard(int argc, char **argv)
{
    bool open = false;
    cli_opt opts[] = {
        {"open", 0, CLI_FLAG, &open, NULL, "also open it in the desktop's browser (xdg-open)"}};
    cli_command cmd = {.usage = "prism dashboard [--open]",
                       .summary = "Prints the URL of the cluster's dashboard, a web page the "
                                  "GCS serves, after checking that the cluster takes the token.",
                       .opts = opts,
                       .nopts = 1};
    return cli_command_run(&cmd, argc, argv, show, &open);
}
