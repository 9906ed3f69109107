#include "client.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "prism_fs.h"

const char *cli_home(void)
{
    static char home[2048];
    if (home[0])
        return home;
    const char *env = getenv("PRISM_HOME");
    const char *user = getenv("HOME");
    if (env && *env)
        snprintf(home, sizeof home, "%s", env);
    else
        snprintf(home, sizeof home, "%s/.prism", user && *user ? user : ".");
    return home;
}

int cli_home_path(char *out, size_t n, const char *name)
{
    if ((size_t)snprintf(out, n, "%s/%s", cli_home(), name) >= n) {
        fprintf(stderr, "prism: path under %s is too long\n", cli_home());
        return -1;
    }
    return 0;
}

char *cli_read_text(const char *path)
{
    size_t len = 0;
    char *text = prism_read_file(path, 64 * 1024, &len);
    while (text && len > 0 && isspace((unsigned char)text[len - 1]))
        text[--len] = '\0';
    return text;
}

/* The value of a global flag, else of an environment variable, else of a file in the home. */
static char *resolve(const char *flag, const char *env, const char *file)
{
    if (flag && *flag)
        return strdup(flag);
    const char *v = getenv(env);
    if (v && *v)
        return strdup(v);
    char path[4096];
    if (cli_home_path(path, sizeof path, file) != 0)
        return NULL;
    return cli_read_text(path);
}

int cli_client_open(cli_client *c)
{
    memset(c, 0, sizeof *c);
    char *address = resolve(cli_global_address, "PRISM_ADDRESS", "address");
    if (!address || !*address) {
        fprintf(stderr,
                "prism: no cluster at %s: run `prism up` (or give --address / PRISM_ADDRESS)\n",
                cli_home());
        free(address);
        return -1;
    }
    char *token = resolve(cli_global_token, "PRISM_TOKEN", "token");
    snprintf(c->address, sizeof c->address, "%s", address);
    int rc = prism_httpc_create(&c->http, address, token);
    if (rc != 0)
        fprintf(stderr, "prism: cannot create an HTTP client for %s\n", address);
    free(address);
    free(token);
    return rc;
}

void cli_client_close(cli_client *c)
{
    prism_httpc_destroy(c->http);
    c->http = NULL;
}

void cli_report_error(cli_client *c, long status, json_t *doc, const char *transport_err)
{
    if (transport_err) {
        fprintf(stderr, "prism: cannot reach the cluster at %s (%s): is it running? (`prism up`)\n",
                c->address, transport_err);
        return;
    }
    char fallback[64];
    snprintf(fallback, sizeof fallback, "the cluster answered HTTP %ld", status);
    fprintf(stderr, "prism: %s\n", prism_httpc_error_message(doc, fallback));
}

int cli_call(cli_client *c, const char *method, const char *path, json_t *body, json_t **out)
{
    char err[512];
    long status = 0;
    json_t *doc = NULL;
    if (out)
        *out = NULL;
    if (prism_httpc_json(c->http, method, path, body, CLI_TIMEOUT_MS, &status, &doc, err,
                         sizeof err) != 0) {
        cli_report_error(c, 0, NULL, err);
        return -1;
    }
    if (status < 200 || status >= 300) {
        cli_report_error(c, status, doc, NULL);
        json_decref(doc);
        return -1;
    }
    if (out)
        *out = doc;
    else
        json_decref(doc);
    return 0;
}

int cli_escape(const char *in, char *out, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t j = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if (j + 4 > n)
            return -1;
        if (isalnum(*p) || strchr("-._~", *p)) {
            out[j++] = (char)*p;
        } else {
            out[j++] = '%';
            out[j++] = hex[*p >> 4];
            out[j++] = hex[*p & 15];
        }
    }
    if (j >= n)
        return -1;
    out[j] = '\0';
    return 0;
}

int cli_job_path(char *out, size_t n, const char *id, const char *suffix)
{
    char esc[1024];
    if (cli_escape(id, esc, sizeof esc) != 0 ||
        (size_t)snprintf(out, n, "/api/v1/jobs/%s%s", esc, suffix) >= n) {
        fprintf(stderr, "prism: job id is too long\n");
        return -1;
    }
    return 0;
}

int cli_add_query(char *path, size_t n, const char *name, const char *value)
{
    char esc[1024];
    if (!value)
        return 0;
    size_t len = strlen(path);
    if (cli_escape(value, esc, sizeof esc) != 0 ||
        (size_t)snprintf(path + len, n - len, "&%s=%s", name, esc) >= n - len) {
        fprintf(stderr, "prism: --%s is too long\n", name);
        return -1;
    }
    return 0;
}

#define LIST_PAGE 100

int cli_list_pages(cli_client *c, const char *path, const char *key, int64_t limit, bool as_json,
                   const char *header, void (*row)(json_t *item))
{
    char *cursor = NULL;
    int64_t shown = 0;
    int rc = 0;
    if (!as_json)
        printf("%s\n", header);
    while (shown < limit && rc == 0) {
        char page[8192];
        int64_t want = limit - shown < LIST_PAGE ? limit - shown : LIST_PAGE;
        snprintf(page, sizeof page, "%s%slimit=%lld", path, strchr(path, '?') ? "&" : "?",
                 (long long)want);
        json_t *doc = NULL, *item;
        if (cli_add_query(page, sizeof page, "cursor", cursor) != 0 ||
            cli_call(c, "GET", page, NULL, &doc) != 0)
            rc = -1;
        size_t i;
        json_array_foreach(json_object_get(doc, key), i, item) {
            if (shown++ >= limit)
                break;
            if (as_json) {
                json_dumpf(item, stdout, JSON_COMPACT);
                printf("\n");
            } else {
                row(item);
            }
        }
        const char *next = json_string_value(json_object_get(doc, "next_cursor"));
        free(cursor);
        cursor = next && *next && i > 0 ? strdup(next) : NULL;
        json_decref(doc);
        if (!cursor)
            break;
    }
    free(cursor);
    return rc;
}

int cli_command_run(const cli_command *cmd, int argc, char **argv,
                    int (*fn)(cli_client *c, const cli_parsed *p, void *ud), void *ud)
{
    cli_parsed p;
    int rc = cli_parse_exit(cli_parse(cmd, argc, argv, &p));
    if (rc >= 0)
        return rc;
    cli_client c;
    if (cli_client_open(&c) != 0)
        return CLI_EXIT_FAIL;
    rc = fn(&c, &p, ud) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    cli_client_close(&c);
    return rc;
}

int cli_subcommands(const char *group, const cli_subcommand *subs, size_t n, int argc, char **argv)
{
    for (size_t i = 0; argc >= 2 && i < n; i++)
        if (!strcmp(argv[1], subs[i].name))
            return subs[i].run(argc - 1, argv + 1);
    bool help = argc >= 2 &&
                (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"));
    if (argc >= 2 && !help)
        fprintf(stderr, "prism: unknown %s command '%s' (see prism %s --help)\n", group, argv[1],
                group);
    FILE *f = help ? stdout : stderr;
    fprintf(f, "usage: prism %s COMMAND [ARGS...]\n\nCommands:\n", group);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "  %-8s %s\n", subs[i].name, subs[i].summary);
    fprintf(f, "\nRun `prism %s COMMAND --help` for a command's options.\n", group);
    return help ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}
