/* prism up / prism down: a local cluster on loopback, its state in $PRISM_HOME.
 *
 *   $PRISM_HOME/token      the cluster token (0600), new at every `up`
 *   $PRISM_HOME/nats.conf  nats-server's config: loopback port and token (0600)
 *   $PRISM_HOME/address    the GCS URL, written once the cluster is ready
 *   $PRISM_HOME/pids       "name pid" per started process
 *   $PRISM_HOME/lock       held while `up` or `down` runs
 *   $PRISM_HOME/logs/      one log per process: nats-server, gcs, scheduler,
 *                          objectstore-node-1, node-1..., dataservice
 *   $PRISM_HOME/run/       the address files the services write, nats-server's ports file
 *   $PRISM_HOME/gcs/       the GCS data (SQLite file, packages)
 *   $PRISM_HOME/nodes/N/   each node's state: the agent's, objectstore.sock, spill/ */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "client.h"
#include "pidfile.h"
#include "prism_fs.h"
#include "prism_id.h"
#include "prism_time.h"
#include "proc.h"
#include "ready.h"

#define READY_TIMEOUT_MS 20000
#define MAX_NODES 32

typedef struct up_opts {
    int64_t nodes, port, memory, num_cpus, num_gpus, store_memory;
    bool store_huge_pages;
    const char *resources, *log_level;
} up_opts;

/* What `up` has started so far, to undo on failure. */
typedef struct cluster {
    up_opts *o;
    char pids_path[4096];
    pid_t pids[PIDFILE_MAX];
    size_t npids;
    int nats_port;
    char nats_url[64];
    char gcs_url[1024];
    char scheduler_url[1024];
    char dataservice_url[1024];
    pid_t gcs_pid;
} cluster;

/* A heap-built, NULL-terminated argv. */
typedef struct argv_list {
    char *v[48];
    int n;
    bool failed; /* an argument could not be added */
} argv_list;

static void arg_add(argv_list *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg_add(argv_list *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (a->n + 1 < (int)(sizeof a->v / sizeof a->v[0]) && vasprintf(&s, fmt, ap) >= 0)
        a->v[a->n++] = s;
    else
        a->failed = true;
    va_end(ap);
}

static void arg_free(argv_list *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
    a->n = 0;
}

/* Writes "$PRISM_HOME/<fmt...>" to `out`. */
static void home_file(char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void home_file(char *out, size_t n, const char *fmt, ...)
{
    char rel[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    cli_home_path(out, n, rel);
}

/* Takes the home's lock for the life of the process. Returns 0 or -1. */
static int lock_home(void)
{
    char path[4096];
    home_file(path, sizeof path, "%s", "lock");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
        return 0; /* the descriptor stays open until exit */
    fprintf(stderr, "prism: %s: %s\n", path,
            fd < 0 ? strerror(errno) : "another `prism up` or `prism down` is running");
    if (fd >= 0)
        close(fd);
    return -1;
}

static int make_dirs(void)
{
    static const char *const dirs[] = {"", "logs", "run", "gcs", "nodes"};
    char path[4096];
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        home_file(path, sizeof path, "%s", dirs[i]);
        if (prism_mkdir_p(path, 0700) != 0) {
            fprintf(stderr, "prism: cannot create %s: %s\n", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int write_secret(const char *name, const char *text)
{
    char path[4096];
    home_file(path, sizeof path, "%s", name);
    if (prism_write_file_atomic(path, text, strlen(text), 0600) != 0) {
        fprintf(stderr, "prism: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* A new random token in $PRISM_HOME/token. */
static int make_token(char token[65])
{
    uint8_t bytes[32];
    if (getrandom(bytes, sizeof bytes, 0) != (ssize_t)sizeof bytes) {
        fprintf(stderr, "prism: getrandom: %s\n", strerror(errno));
        return -1;
    }
    prism_hex_encode(bytes, (int)sizeof bytes, token);
    token[64] = '\0';
    char line[80];
    snprintf(line, sizeof line, "%s\n", token);
    return write_secret("token", line);
}

/* Starts one process and records it. Returns its pid, or -1. */
static pid_t start(cluster *c, const char *name, argv_list *a)
{
    char log[4096];
    home_file(log, sizeof log, "logs/%s.log", name);
    pid_t pid = -1;
    int rc = a->n > 0 && !a->failed ? proc_spawn(a->v, log, &pid) : -1;
    if (a->failed)
        fprintf(stderr, "prism: cannot build the command line of %s\n", name);
    arg_free(a);
    if (rc != 0)
        return -1;
    c->pids[c->npids++] = pid;
    if (pidfile_append(c->pids_path, name, pid) != 0)
        return -1;
    return pid;
}

static void failed(const char *name)
{
    char log[4096];
    home_file(log, sizeof log, "logs/%s.log", name);
    ready_print_log_tail(log, 20);
}

static int start_nats(cluster *c, const char *token)
{
    char program[4096], conf[16384];
    if (proc_find_system("nats-server", program, sizeof program) != 0)
        return -1;
    /* The certificate of the REST listeners serves NATS too (docs/security.md#tls). */
    const char *cert = getenv("PRISM_TLS_CERT"), *key = getenv("PRISM_TLS_KEY");
    bool tls = cert && *cert && key && *key;
    if (tls && (strpbrk(cert, "\"\\\n") || strpbrk(key, "\"\\\n"))) {
        fprintf(stderr, "prism: PRISM_TLS_CERT and PRISM_TLS_KEY must not contain quotes, "
                        "backslashes or newlines\n");
        return -1;
    }
    char tls_block[8192] = "";
    if (tls)
        snprintf(tls_block, sizeof tls_block, "tls {\n  cert_file: \"%s\"\n  key_file: \"%s\"\n}\n",
                 cert, key);
    /* No `http` line: nats-server then serves no monitoring, whose
     * /connz?auth=1 would show the token to anyone on this host. Port -1:
     * nats-server binds a free port itself and names it in its ports file
     * in run/ (ours alone). A port picked here and bound by it later could
     * be taken in between by another user of this host, whose listener
     * every service would then send the token to. */
    snprintf(conf, sizeof conf,
             "# written by `prism up`\nlisten: \"127.0.0.1:-1\"\nauthorization {\n  token: "
             "\"%s\"\n}\n%s",
             token, tls_block);
    if (write_secret("nats.conf", conf) != 0)
        return -1;
    char run[4096], stale[4200];
    home_file(run, sizeof run, "%s", "run");
    /* one a killed nats-server left could name its pid again */
    snprintf(stale, sizeof stale, "%s/nats-server_*.ports", run);
    glob_t g;
    if (glob(stale, GLOB_NOSORT, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++)
            unlink(g.gl_pathv[i]);
        globfree(&g);
    }
    argv_list a = {0};
    home_file(conf, sizeof conf, "%s", "nats.conf");
    arg_add(&a, "%s", program);
    arg_add(&a, "-c");
    arg_add(&a, "%s", conf);
    arg_add(&a, "--ports_file_dir");
    arg_add(&a, "%s", run);
    pid_t pid = start(c, "nats-server", &a);
    if (pid < 0 || ready_wait_nats(pid, run, READY_TIMEOUT_MS, &c->nats_port) != 0) {
        failed("nats-server");
        return -1;
    }
    snprintf(c->nats_url, sizeof c->nats_url, "%s://127.0.0.1:%d", tls ? "tls" : "nats",
             c->nats_port);
    return 0;
}

/* The program and flags every service takes; its address file is run/NAME.address. */
static int service_args(cluster *c, argv_list *a, const char *program, const char *name,
                        int64_t port)
{
    char path[4096];
    if (proc_find_service(program, path, sizeof path) != 0)
        return -1;
    arg_add(a, "%s", path);
    arg_add(a, "--host=127.0.0.1");
    arg_add(a, "--port=%lld", (long long)port);
    home_file(path, sizeof path, "run/%s.address", name);
    unlink(path);
    arg_add(a, "--address-file=%s", path);
    home_file(path, sizeof path, "%s", "token");
    arg_add(a, "--token-file=%s", path);
    arg_add(a, "--nats-url=%s", c->nats_url);
    if (c->o->log_level)
        arg_add(a, "--log-level=%s", c->o->log_level);
    return 0;
}

static int wait_service(const char *name, pid_t pid, char *url, size_t n)
{
    char path[4096];
    home_file(path, sizeof path, "run/%s.address", name);
    if (ready_wait_service(name, path, pid, READY_TIMEOUT_MS, url, n) != 0) {
        failed(name);
        return -1;
    }
    return 0;
}

static int start_gcs(cluster *c)
{
    argv_list a = {0};
    char dir[4096];
    if (service_args(c, &a, "prism-gcs", "gcs", c->o->port) != 0)
        return -1;
    home_file(dir, sizeof dir, "%s", "gcs");
    arg_add(&a, "--data-dir=%s", dir);
    c->gcs_pid = start(c, "gcs", &a);
    if (c->gcs_pid < 0)
        return -1;
    return wait_service("gcs", c->gcs_pid, c->gcs_url, sizeof c->gcs_url);
}

static int start_scheduler(cluster *c)
{
    argv_list a = {0};
    if (service_args(c, &a, "prism-scheduler", "scheduler", 0) != 0)
        return -1;
    pid_t pid = start(c, "scheduler", &a);
    if (pid < 0)
        return -1;
    return wait_service("scheduler", pid, c->scheduler_url, sizeof c->scheduler_url);
}

/* The dataservice: datasets, reached through the GCS's address (it asks on
 * NATS where the dataservice serves). Its client submits through the GCS. */
static int start_dataservice(cluster *c)
{
    argv_list a = {0};
    if (service_args(c, &a, "prism-dataservice", "dataservice", 0) != 0)
        return -1;
    arg_add(&a, "--gcs-address=%s", c->gcs_url);
    pid_t pid = start(c, "dataservice", &a);
    if (pid < 0)
        return -1;
    return wait_service("dataservice", pid, c->dataservice_url, sizeof c->dataservice_url);
}

/* The object store of node `name`, named objectstore-NAME. */
static pid_t start_store(cluster *c, const char *name)
{
    argv_list a = {0};
    char proc[64], dir[4096];
    snprintf(proc, sizeof proc, "objectstore-%s", name);
    home_file(dir, sizeof dir, "nodes/%s", name);
    if (prism_mkdir_p(dir, 0700) != 0) {
        fprintf(stderr, "prism: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (service_args(c, &a, "prism-objectstore", proc, 0) != 0)
        return -1;
    arg_add(&a, "--socket=%s/objectstore.sock", dir);
    arg_add(&a, "--memory=%lld", (long long)c->o->store_memory);
    if (c->o->store_huge_pages)
        arg_add(&a, "--huge-pages");
    arg_add(&a, "--spill-dir=%s/spill", dir);
    return start(c, proc, &a);
}

static pid_t start_node(cluster *c, const char *name, const char *store_url)
{
    argv_list a = {0};
    char dir[4096];
    if (service_args(c, &a, "prism-nodeagent", name, 0) != 0)
        return -1;
    arg_add(&a, "--gcs-address=%s", c->gcs_url);
    home_file(dir, sizeof dir, "nodes/%s", name);
    arg_add(&a, "--state-dir=%s", dir);
    arg_add(&a, "--store-socket=%s/objectstore.sock", dir);
    arg_add(&a, "--store-address=%s", store_url);
    arg_add(&a, "--name=%s", name);
    if (c->o->num_cpus >= 0)
        arg_add(&a, "--num-cpus=%lld", (long long)c->o->num_cpus);
    if (c->o->num_gpus >= 0)
        arg_add(&a, "--num-gpus=%lld", (long long)c->o->num_gpus);
    if (c->o->memory >= 0)
        arg_add(&a, "--memory=%lld", (long long)c->o->memory);
    if (c->o->resources)
        arg_add(&a, "--resources=%s", c->o->resources);
    return start(c, name, &a);
}

/* Every node's object store, each one's URL in `urls`. */
static int start_stores(cluster *c, char urls[][1024])
{
    pid_t pids[MAX_NODES];
    char name[64];
    for (int i = 0; i < c->o->nodes; i++) {
        snprintf(name, sizeof name, "node-%d", i + 1);
        if ((pids[i] = start_store(c, name)) < 0)
            return -1;
    }
    for (int i = 0; i < c->o->nodes; i++) {
        snprintf(name, sizeof name, "objectstore-node-%d", i + 1);
        if (wait_service(name, pids[i], urls[i], 1024) != 0)
            return -1;
    }
    return 0;
}

/* The node agents, once their object stores serve. */
static int start_nodes(cluster *c)
{
    pid_t pids[MAX_NODES];
    char stores[MAX_NODES][1024], name[32], url[1024];
    if (start_stores(c, stores) != 0)
        return -1;
    for (int i = 0; i < c->o->nodes; i++) {
        snprintf(name, sizeof name, "node-%d", i + 1);
        if ((pids[i] = start_node(c, name, stores[i])) < 0)
            return -1;
    }
    for (int i = 0; i < c->o->nodes; i++) {
        snprintf(name, sizeof name, "node-%d", i + 1);
        if (wait_service(name, pids[i], url, sizeof url) != 0)
            return -1;
    }
    return 0;
}

/* Polls GET /api/v1/cluster until the GCS counts every node alive. */
static int wait_nodes_alive(cluster *c, const char *token)
{
    prism_httpc *http = NULL;
    if (prism_httpc_create(&http, c->gcs_url, token) != 0)
        return -1;
    int64_t deadline = prism_mono_ms() + READY_TIMEOUT_MS, alive = 0;
    while (alive < c->o->nodes && prism_mono_ms() < deadline && proc_alive(c->gcs_pid)) {
        json_t *doc = NULL;
        long status = 0;
        char err[256];
        if (prism_httpc_json(http, "GET", "/api/v1/cluster", NULL, 2000, &status, &doc, err,
                             sizeof err) == 0 &&
            status == 200)
            alive = json_integer_value(json_object_get(doc, "nodes_alive"));
        json_decref(doc);
        if (alive < c->o->nodes)
            prism_sleep_ms(100);
    }
    prism_httpc_destroy(http);
    if (alive >= c->o->nodes)
        return 0;
    fprintf(stderr, "prism: the GCS counts %lld of %lld nodes alive\n", (long long)alive,
            (long long)c->o->nodes);
    failed("gcs");
    return -1;
}

static int check_not_running(const char *pids_path)
{
    pidfile t;
    if (pidfile_load(&t, pids_path) != 0)
        return -1;
    if (pidfile_count_alive(&t) > 0) {
        fprintf(stderr,
                "prism: a cluster is already running in %s (`prism status` shows it, "
                "`prism down` stops it)\n",
                cli_home());
        return -1;
    }
    unlink(pids_path); /* left by a cluster that is gone */
    return 0;
}

/* Stops what `up` started, newest first in two steps: services, then nats-server. */
static void rollback(cluster *c)
{
    if (c->npids == 0)
        return;
    fprintf(stderr, "prism: stopping what was started\n");
    if (c->npids > 1)
        proc_stop(c->pids + 1, c->npids - 1, 10000);
    proc_stop(c->pids, 1, 5000);
    unlink(c->pids_path);
}

static int write_address(cluster *c)
{
    char path[4096], line[1100];
    home_file(path, sizeof path, "%s", "address");
    snprintf(line, sizeof line, "%s\n", c->gcs_url);
    if (prism_write_file_atomic(path, line, strlen(line), 0644) != 0) {
        fprintf(stderr, "prism: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void print_started(cluster *c)
{
    const char *home = cli_home();
    printf("Started a local Prism cluster in %s\n"
           "  GCS:       %s (%lld node%s alive)\n"
           "  dashboard: %s/ (sign in with the token in %s/token)\n"
           "  scheduler: %s\n"
           "  datasets:  %s (also through the GCS's address)\n"
           "  NATS:      %s\n"
           "  logs:      %s/logs/\n"
           "Try `prism status` or `prism job submit -- echo hello`; stop it with `prism down`.\n"
           "Other clients: export PRISM_ADDRESS=%s PRISM_TOKEN=$(cat %s/token)\n",
           home, c->gcs_url, (long long)c->o->nodes, c->o->nodes == 1 ? "" : "s", c->gcs_url, home,
           c->scheduler_url, c->dataservice_url, c->nats_url, home, c->gcs_url, home);
}

static int up_run(up_opts *o)
{
    cluster c = {.o = o};
    char token[65];
    if (make_dirs() != 0 || lock_home() != 0)
        return CLI_EXIT_FAIL;
    home_file(c.pids_path, sizeof c.pids_path, "%s", "pids");
    if (check_not_running(c.pids_path) != 0)
        return CLI_EXIT_FAIL;
    char address[4096];
    home_file(address, sizeof address, "%s", "address");
    unlink(address);
    if (make_token(token) != 0 || start_nats(&c, token) != 0 || start_gcs(&c) != 0 ||
        start_scheduler(&c) != 0 || start_nodes(&c) != 0 || wait_nodes_alive(&c, token) != 0 ||
        start_dataservice(&c) != 0 || write_address(&c) != 0) {
        rollback(&c);
        return CLI_EXIT_FAIL;
    }
    print_started(&c);
    return CLI_EXIT_OK;
}

static int check_up_opts(const up_opts *o)
{
    json_t *res = o->resources ? json_loads(o->resources, 0, NULL) : NULL;
    bool bad_res = o->resources && !json_is_object(res);
    json_decref(res);
    if (o->nodes < 1 || o->nodes > MAX_NODES)
        fprintf(stderr, "prism: --nodes must be between 1 and %d\n", MAX_NODES);
    else if (o->num_cpus < -1 || o->num_gpus < -1)
        fprintf(stderr, "prism: --num-cpus and --num-gpus must not be negative\n");
    else if (o->store_memory <= 0)
        fprintf(stderr, "prism: --object-store-memory must be positive\n");
    else if (o->port < 0 || o->port > 65535)
        fprintf(stderr, "prism: --port must be between 0 and 65535\n");
    else if (bad_res)
        fprintf(stderr, "prism: --resources must be a JSON object, e.g. '{\"disk\": 4}'\n");
    else
        return 0;
    return -1;
}

int cmd_up(int argc, char **argv)
{
    up_opts o = {
        .nodes = 1, .memory = -1, .num_cpus = -1, .num_gpus = -1, .store_memory = 512 << 20};
    cli_opt opts[] = {
        {"nodes", 'n', CLI_INT, &o.nodes, "N", "node agents to start (default 1)"},
        {"num-cpus", 0, CLI_INT, &o.num_cpus, "N", "CPUs per node (default: detected)"},
        {"num-gpus", 0, CLI_INT, &o.num_gpus, "N", "GPUs per node (default: detected)"},
        {"memory", 0, CLI_SIZE, &o.memory, "SIZE",
         "memory per node, e.g. 4GiB (default: detected)"},
        {"resources", 0, CLI_STRING, &o.resources, "JSON",
         "custom resources per node, e.g. '{\"disk\": 4}'"},
        {"object-store-memory", 0, CLI_SIZE, &o.store_memory, "SIZE",
         "shared memory of each node's object store (default 512MiB)"},
        {"object-store-huge-pages", 0, CLI_FLAG, &o.store_huge_pages, NULL,
         "the stores' memory in huge pages, reserved beforehand in /proc/sys/vm/nr_hugepages"},
        {"port", 'p', CLI_INT, &o.port, "P", "GCS port (default 0: a free port)"},
        {"log-level", 0, CLI_STRING, &o.log_level, "LEVEL",
         "services' log level: debug|info|warn|error"},
    };
    cli_command cmd = {
        .usage =
            "prism up [--nodes N] [--num-cpus N] [--memory SIZE] [--object-store-memory SIZE]\n"
            "         [--object-store-huge-pages] [--port P]",
        .summary = "Starts a local cluster on loopback: nats-server, the GCS, the scheduler, N\n"
                   "nodes (a node agent and an object store each) and the dataservice, with a\n"
                   "new token, all state under $PRISM_HOME (default ~/.prism). The GCS address\n"
                   "is written to $PRISM_HOME/address; `prism down` stops the cluster.",
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
    };
    cli_parsed p;
    int rc = cli_parse_exit(cli_parse(&cmd, argc, argv, &p));
    if (rc < 0)
        rc = check_up_opts(&o) != 0 ? CLI_EXIT_USAGE : up_run(&o);
    cli_command_free(&cmd);
    return rc;
}

/* Stops the recorded processes that still run their program. Returns how many. */
static size_t stop_recorded(const pidfile *t)
{
    pid_t services[PIDFILE_MAX], nats[PIDFILE_MAX];
    size_t ns = 0, nn = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (!proc_runs(t->e[i].pid, pidfile_program(t->e[i].name)))
            continue;
        if (!strcmp(t->e[i].name, "nats-server"))
            nats[nn++] = t->e[i].pid;
        else
            services[ns++] = t->e[i].pid;
    }
    int killed = proc_stop(services, ns, 10000) + proc_stop(nats, nn, 5000);
    if (killed > 0)
        fprintf(stderr, "prism: %d process%s did not stop in time and got SIGKILL\n", killed,
                killed == 1 ? "" : "es");
    return ns + nn;
}

static void remove_state_files(void)
{
    static const char *const files[] = {"pids", "address"};
    char path[4096];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        home_file(path, sizeof path, "%s", files[i]);
        unlink(path);
    }
}

static int down_run(void)
{
    char pids_path[4096];
    pidfile t;
    home_file(pids_path, sizeof pids_path, "%s", "pids");
    if (access(cli_home(), F_OK) != 0) {
        printf("No cluster in %s\n", cli_home());
        return CLI_EXIT_OK;
    }
    if (lock_home() != 0 || pidfile_load(&t, pids_path) != 0)
        return CLI_EXIT_FAIL;
    size_t stopped = stop_recorded(&t);
    remove_state_files();
    if (stopped == 0)
        printf("No cluster was running in %s\n", cli_home());
    else
        printf("Stopped the cluster in %s (%zu process%s)\n", cli_home(), stopped,
               stopped == 1 ? "" : "es");
    return CLI_EXIT_OK;
}

int cmd_down(int argc, char **argv)
{
    cli_command cmd = {
        .usage = "prism down",
        .summary = "Stops the local cluster of $PRISM_HOME: SIGTERM to the services, then to\n"
                   "nats-server; SIGKILL to what is left after about 10 seconds.",
    };
    cli_parsed p;
    int rc = cli_parse_exit(cli_parse(&cmd, argc, argv, &p));
    return rc >= 0 ? rc : down_run();
}
