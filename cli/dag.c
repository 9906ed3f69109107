/* prism dag list, prism dag get: the compiled DAGs drivers report. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "cli.h"
#include "client.h"
#include "format.h"

/* "RUNNING/ALL" of the DAG's actors' loops, and "!" when one ended with an
 * error. */
static void loops_summary(json_t *d, char *out, size_t len)
{
    size_t i, running = 0, failed = 0;
    json_t *l, *loops = json_object_get(d, "loops");
    json_array_foreach(loops, i, l) {
        running += !strcmp(fmt_str(l, "state", ""), "RUNNING");
        failed += json_is_string(json_object_get(l, "error"));
    }
    snprintf(out, len, "%zu/%zu%s", running, json_array_size(loops), failed ? "!" : "");
}

static void print_row(json_t *d)
{
    size_t nodes = json_array_size(json_object_get(d, "nodes"));
    size_t edges = json_array_size(json_object_get(d, "edges"));
    char loops[32];
    loops_summary(d, loops, sizeof loops);
    printf("%-32s  %-10s  %5zu  %5zu  %-6s  %12lld  %s\n", fmt_str(d, "id", "?"),
           fmt_str(d, "state", "?"), nodes, edges, loops, (long long)fmt_int(d, "executions"),
           fmt_str(d, "owner", "-"));
}

typedef struct list_args {
    const char *state;
    int64_t limit;
    bool as_json;
} list_args;

static int list_run(cli_client *c, const cli_parsed *p, void *ud)
{
    const list_args *a = ud;
    (void)p;
    char path[1024] = "/api/v1/dags?";
    if (cli_add_query(path, sizeof path, "state", a->state) != 0)
        return -1;
    char header[256];
    snprintf(header, sizeof header, "%-32s  %-10s  %5s  %5s  %-6s  %12s  %s", "DAG ID", "STATE",
             "NODES", "EDGES", "LOOPS", "EXECUTIONS", "OWNER");
    return cli_list_pages(c, path, "dags", a->limit > 0 ? a->limit : 0, a->as_json, header,
                          print_row);
}

static int dag_list(int argc, char **argv)
{
    list_args a = {.limit = 100};
    cli_opt opts[] = {
        {"state", 's', CLI_STRING, &a.state, "S",
         "only DAGs in state S (COMPILED, TORN_DOWN, "
         "BROKEN)"},
        {"limit", 'l', CLI_INT, &a.limit, "N", "at most N DAGs (default 100)"},
        {"json", 0, CLI_FLAG, &a.as_json, NULL, "one JSON DAG object per line"},
    };
    cli_command cmd = {
        .usage = "prism dag list [--state S] [--limit N] [--json]",
        .summary = "Lists compiled DAGs, newest first: state, nodes, edges, its actors' loops "
                   "running (of all; ! when one ended with an error), executions done and the "
                   "driver that owns it.",
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
    };
    return cli_command_run(&cmd, argc, argv, list_run, &a);
}

/* The graph, one line per node: what it runs and what it takes. */
static void print_dag(json_t *d)
{
    printf("DAG %s: %s, %lld executions, owner %s\n", fmt_str(d, "id", "?"),
           fmt_str(d, "state", "?"), (long long)fmt_int(d, "executions"), fmt_str(d, "owner", "-"));
    printf("channels: %lld slots (shared memory) or frames (TCP) of %lld bytes\n",
           (long long)fmt_int(d, "max_inflight"), (long long)fmt_int(d, "max_buf_size"));
    size_t i, j;
    json_t *n, *arg;
    json_array_foreach(json_object_get(d, "nodes"), i, n) {
        printf("  %3lld  %-12s", (long long)fmt_int(n, "index"), fmt_str(n, "kind", "?"));
        if (json_object_get(n, "actor_id"))
            printf("  %s.%s on %s", fmt_str(n, "class", "?"), fmt_str(n, "method", "?"),
                   fmt_str(n, "actor_id", "?"));
        json_t *args = json_object_get(n, "args");
        if (json_array_size(args))
            printf("  <-");
        json_array_foreach(args, j, arg)
            printf(" %lld", (long long)json_integer_value(arg));
        putchar('\n');
    }
}

/* The bound of the bucket that holds quantile q of a latency histogram:
 * bucket b (< 14) holds latencies under 2^b µs, the last 8192 µs or more. */
static void quantile(json_t *buckets, uint64_t n, double q, char *out, size_t len)
{
    uint64_t want = (uint64_t)(q * (double)n + 0.999999), seen = 0;
    size_t b;
    json_t *v;
    json_array_foreach(buckets, b, v) {
        seen += (uint64_t)json_integer_value(v);
        if (seen >= want)
            break;
    }
    if (b + 1 >= json_array_size(buckets))
        snprintf(out, len, ">= %u us", 1u << (json_array_size(buckets) - 2));
    else
        snprintf(out, len, "< %u us", 1u << b);
}

static void print_hop(const char *from, const char *to, json_t *h)
{
    uint64_t n = (uint64_t)fmt_int(h, "count");
    char p50[32], p99[32];
    quantile(json_object_get(h, "buckets"), n, 0.5, p50, sizeof p50);
    quantile(json_object_get(h, "buckets"), n, 0.99, p99, sizeof p99);
    printf("  %4s -> %-6s  %11llu timed  mean %9.1f us  p50 %-10s  p99 %s\n", from, to,
           (unsigned long long)n, json_number_value(json_object_get(h, "mean_us")), n ? p50 : "-",
           n ? p99 : "-");
}

/* Each hop's latency (publish to read), from the channels' counters. */
static void print_hops(json_t *d)
{
    size_t i;
    json_t *e, *h;
    printf("hops (from a value's publish to its read; one value in 8 is timed):\n");
    json_array_foreach(json_object_get(d, "edges"), i, e) {
        char from[24], to[24];
        snprintf(from, sizeof from, "%lld", (long long)fmt_int(e, "from"));
        snprintf(to, sizeof to, "%lld", (long long)fmt_int(e, "to"));
        if (json_object_get(e, "latency"))
            print_hop(from, to, json_object_get(e, "latency"));
    }
    json_t *outs = json_object_get(d, "outputs");
    json_array_foreach(json_object_get(d, "output_latency"), i, h) {
        char from[24];
        snprintf(from, sizeof from, "%lld", (long long)json_integer_value(json_array_get(outs, i)));
        print_hop(from, "driver", h);
    }
}

/* Each actor's loop, as its worker last reported it. */
static void print_loops(json_t *d)
{
    size_t i;
    json_t *l;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long now_ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    printf("loops (each actor's, as its worker reports it):\n");
    json_array_foreach(json_object_get(d, "loops"), i, l) {
        char age[48] = "never";
        if (json_is_integer(json_object_get(l, "active_at")))
            snprintf(age, sizeof age, "%.1f s ago",
                     (double)(now_ms - fmt_int(l, "active_at")) / 1000.0);
        printf("  %s  %-9s  %10lld executions  last active %s", fmt_str(l, "actor_id", "?"),
               fmt_str(l, "state", "?"), (long long)fmt_int(l, "executions"), age);
        if (json_is_string(json_object_get(l, "error")))
            printf("  error: %s", fmt_str(l, "error", ""));
        putchar('\n');
        /* the paths its values took, the ones taken at all */
        const char *name, *sep = "    values:";
        json_t *n;
        json_object_foreach(json_object_get(l, "values"), name, n) {
            if (json_integer_value(n) > 0) {
                printf("%s %s %lld", sep, name, (long long)json_integer_value(n));
                sep = ",";
            }
        }
        if (*sep == ',')
            putchar('\n');
    }
}

static int dag_get(int argc, char **argv)
{
    bool as_json = false;
    cli_opt opts[] = {{"json", 0, CLI_FLAG, &as_json, NULL, "the JSON DAG object"}};
    cli_command cmd = {
        .usage = "prism dag get ID [--json]",
        .summary = "Shows a compiled DAG: its state, executions, graph, each hop's "
                   "latency and each actor's loop.",
        .opts = opts,
        .nopts = 1,
        .min_pos = 1,
        .max_pos = 1,
    };
    cli_parsed p;
    int rc = cli_parse_exit(cli_parse(&cmd, argc, argv, &p));
    if (rc >= 0)
        return rc;
    char path[1200], esc[1024];
    if (cli_escape(p.pos[0], esc, sizeof esc) != 0) {
        fprintf(stderr, "prism: DAG id is too long\n");
        return CLI_EXIT_USAGE;
    }
    snprintf(path, sizeof path, "/api/v1/dags/%s", esc);
    cli_client c;
    if (cli_client_open(&c) != 0)
        return CLI_EXIT_FAIL;
    json_t *d = NULL;
    rc = cli_call(&c, "GET", path, NULL, &d) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (rc == CLI_EXIT_OK && as_json) {
        json_dumpf(d, stdout, JSON_COMPACT);
        putchar('\n');
    } else if (rc == CLI_EXIT_OK) {
        print_dag(d);
        print_hops(d);
        print_loops(d);
    }
    json_decref(d);
    cli_client_close(&c);
    return rc;
}

int cmd_dag(int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"list", dag_list, "list compiled DAGs: prism dag list [--state S] [--limit N] [--json]"},
        {"get", dag_get, "show one: prism dag get ID [--json]"},
    };
    return cli_subcommands("dag", subs, sizeof subs / sizeof subs[0], argc, argv);
}
