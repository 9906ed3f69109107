/* Soak: many trivial tasks through one driver, and the memory of every
 * process of the cluster before and after.
 *
 *   prism-tasks-soak [--tasks N] [--warmup W] [--batch B] [--max-seconds S]
 *                    [--pids FILE] [--store-url URL]... [--num-cpus X]
 *
 * It runs W warm-up tasks, then samples the resident memory (VmRSS) of the
 * driver (itself), of every service in the pid file (`name pid` lines:
 * $PRISM_HOME/pids of `prism up` by default) and of all their descendants
 * (the node agents' workers), and the object count of each node's object
 * store (GET /api/v1/stats; the stores are found through the GCS's node list
 * and each node agent's /api/v1/node, or given with --store-url). Then it
 * runs N more tasks in batches of B (submit B, get them all, release them),
 * stopping early after S seconds, and samples again. Every tenth of the way
 * it prints a progress line to stderr. One JSON line on stdout tells the
 * result; "ok" is true when no process grew by more than 10% and the object
 * stores hold no more objects than after the warm-up. */
#include <curl/curl.h>
#include <ctype.h>
#include <dirent.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <prism/prism.h>

#include "bench_util.h"

#define MAX_PROCS 512
#define MAX_STORES 64
#define GET_TIMEOUT_MS 120000

typedef struct proc {
    pid_t pid;
    char name[64];
    long warm_kib, end_kib;   /* VmRSS */
    long warm_anon, end_anon; /* RssAnon: private memory, without the mapped arena */
    bool seen_warm, seen_end;
} proc;

static proc procs[MAX_PROCS];
static size_t nprocs;
static char *stores[MAX_STORES];
static size_t nstores;
static bool stores_given;

/* ---------- processes ---------- */

static proc *proc_get(pid_t pid, const char *name)
{
    for (size_t i = 0; i < nprocs; i++)
        if (procs[i].pid == pid)
            return &procs[i];
    if (nprocs == MAX_PROCS)
        return NULL;
    proc *p = &procs[nprocs++];
    memset(p, 0, sizeof *p);
    p->pid = pid;
    snprintf(p->name, sizeof p->name, "%s", name);
    return p;
}

static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *close_paren = strrchr(buf, ')');
    int ppid = -1;
    if (!close_paren || sscanf(close_paren + 1, " %*c %d", &ppid) != 1)
        return -1;
    return ppid;
}

/* The program name of a process: argv[0]'s last part. */
static void program_of(pid_t pid, char *out, size_t n)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(path, "r");
    size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[got] = '\0';
    const char *slash = strrchr(buf, '/');
    snprintf(out, n, "%s", got ? (slash ? slash + 1 : buf) : "?");
}

static void record(proc *p, bool warm)
{
    if (!p)
        return;
    long rss = bench_rss_kib(p->pid), anon = bench_status_kib(p->pid, "RssAnon:");
    if (rss < 0)
        return;
    if (warm)
        p->warm_kib = rss, p->warm_anon = anon, p->seen_warm = true;
    else
        p->end_kib = rss, p->end_anon = anon, p->seen_end = true;
}

/* Services from the pid file, then every descendant of them. `warm` picks
 * which sample to record. */
static void sample_processes(const char *pidfile, bool warm)
{
    pid_t roots[MAX_PROCS];
    char names[MAX_PROCS][48];
    size_t nroots = 0;
    FILE *f = fopen(pidfile, "r");
    char line[256];
    while (f && fgets(line, sizeof line, f) && nroots < MAX_PROCS) {
        char name[48];
        int pid;
        if (sscanf(line, "%47s %d", name, &pid) == 2 && pid > 0 && bench_rss_kib(pid) >= 0) {
            roots[nroots] = pid;
            snprintf(names[nroots++], sizeof names[0], "%s", name);
        }
    }
    if (f)
        fclose(f);
    /* a snapshot of parent links */
    static pid_t all[65536], parents[65536];
    size_t nall = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) && nall < 65536) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t pid = atoi(e->d_name), pp = parent_of(pid);
        if (pp > 0) {
            all[nall] = pid;
            parents[nall++] = pp;
        }
    }
    if (d)
        closedir(d);
    pid_t set[MAX_PROCS];
    size_t nset = 0;
    for (size_t i = 0; i < nroots; i++)
        set[nset++] = roots[i];
    for (size_t k = 0; k < nset; k++) /* breadth first */
        for (size_t i = 0; i < nall && nset < MAX_PROCS; i++)
            if (parents[i] == set[k] && all[i] != getpid())
                set[nset++] = all[i];
    record(proc_get(getpid(), "driver"), warm);
    for (size_t k = 0; k < nset; k++) {
        char name[64];
        if (k < nroots)
            snprintf(name, sizeof name, "%.47s", names[k]);
        else
            program_of(set[k], name, sizeof name);
        if (bench_rss_kib(set[k]) >= 0)
            record(proc_get(set[k], name), warm);
    }
}

/* ---------- object stores ---------- */

typedef struct membuf {
    char *data;
    size_t len;
} membuf;

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    membuf *b = ud;
    char *d = realloc(b->data, b->len + size * n + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, p, size * n);
    b->data = d;
    b->len += size * n;
    d[b->len] = '\0';
    return size * n;
}

static json_t *http_json(const char *base, const char *path, const char *token)
{
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    char url[2048], auth[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token ? token : "");
    struct curl_slist *hdr = curl_slist_append(NULL, auth);
    membuf b = {0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    json_t *doc = rc == CURLE_OK && status == 200 && b.data ? json_loads(b.data, 0, NULL) : NULL;
    free(b.data);
    return doc;
}

static char *read_setting(const char *env, const char *file)
{
    const char *v = getenv(env);
    if (v && *v)
        return strdup(v);
    const char *home = getenv("PRISM_HOME");
    char path[4096], buf[4096];
    if (home && *home)
        snprintf(path, sizeof path, "%s/%s", home, file);
    else
        snprintf(path, sizeof path, "%s/.prism/%s", getenv("HOME") ? getenv("HOME") : "", file);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        n--;
    buf[n] = '\0';
    return strdup(buf);
}

/* The object stores of the alive nodes, through the GCS and the node agents. */
static void find_stores(const char *address, const char *token)
{
    if (stores_given || !address)
        return;
    json_t *doc = http_json(address, "/api/v1/nodes", token);
    json_t *list = json_object_get(doc, "nodes"), *n;
    size_t i;
    json_array_foreach(list, i, n) {
        const char *state = json_string_value(json_object_get(n, "state"));
        const char *addr = json_string_value(json_object_get(n, "address"));
        if (!addr || (state && strcmp(state, "ALIVE")))
            continue;
        json_t *node = http_json(addr, "/api/v1/node", token);
        const char *store = json_string_value(json_object_get(node, "store_address"));
        if (store && *store && nstores < MAX_STORES)
            stores[nstores++] = strdup(store);
        json_decref(node);
    }
    json_decref(doc);
}

/* Objects in all the stores; -1 when one cannot be asked. */
static long store_objects(const char *token, long *bytes)
{
    long total = 0;
    *bytes = 0;
    for (size_t i = 0; i < nstores; i++) {
        json_t *s = http_json(stores[i], "/api/v1/stats", token);
        if (!s)
            return -1;
        total += (long)json_integer_value(json_object_get(s, "objects"));
        *bytes += (long)json_integer_value(json_object_get(s, "used_bytes"));
        json_decref(s);
    }
    return total;
}

/* ---------- the tasks ---------- */

static prism_status batch(prism_client *c, const prism_task_options *o, prism_ref **refs, long n)
{
    prism_status s = PRISM_OK;
    long k = 0;
    for (; k < n; k++)
        if ((s = prism_submit(c, "builtin", "echo", NULL, 0, o, &refs[k])) != PRISM_OK)
            break;
    for (long i = 0; i < k; i++) {
        prism_value *v = NULL;
        prism_status g = s == PRISM_OK ? prism_get(c, refs[i], GET_TIMEOUT_MS, &v) : PRISM_OK;
        if (s == PRISM_OK && g == PRISM_OK && prism_value_kind_of(v) != PRISM_VALUE_NULL)
            g = PRISM_ERR_INTERNAL;
        if (s == PRISM_OK)
            s = g;
        prism_value_free(v);
        prism_ref_release(refs[i]);
    }
    return s;
}

static long total_kib(bool warm)
{
    long t = 0;
    for (size_t i = 0; i < nprocs; i++)
        t += warm ? (procs[i].seen_warm ? procs[i].warm_kib : 0)
                  : (procs[i].seen_end ? procs[i].end_kib : 0);
    return t;
}

int main(int argc, char **argv)
{
    long tasks = 1000000, warmup = 50000, bsize = 1000;
    double max_seconds = 480, num_cpus = 1;
    char *pidfile = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--tasks"))
            tasks = atol(v);
        else if (!strcmp(a, "--warmup"))
            warmup = atol(v);
        else if (!strcmp(a, "--batch"))
            bsize = atol(v);
        else if (!strcmp(a, "--max-seconds"))
            max_seconds = atof(v);
        else if (!strcmp(a, "--num-cpus"))
            num_cpus = atof(v);
        else if (!strcmp(a, "--pids"))
            pidfile = strdup(v);
        else if (!strcmp(a, "--store-url") && nstores < MAX_STORES)
            stores[nstores++] = strdup(v), stores_given = true;
        else {
            fprintf(stderr, "usage: prism-tasks-soak [--tasks N] [--warmup W] [--batch B] "
                            "[--max-seconds S] [--pids FILE] [--store-url URL]... "
                            "[--num-cpus X]\n");
            return 2;
        }
    }
    if (argc % 2 == 0 || tasks < 1 || bsize < 1 || warmup < 0) {
        fprintf(stderr, "prism-tasks-soak: bad arguments\n");
        return 2;
    }
    if (!pidfile) {
        const char *home = getenv("PRISM_HOME"), *user = getenv("HOME");
        char path[4096];
        if (home && *home)
            snprintf(path, sizeof path, "%s/pids", home);
        else
            snprintf(path, sizeof path, "%s/.prism/pids", user ? user : ".");
        pidfile = strdup(path);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *address = read_setting("PRISM_ADDRESS", "address");
    char *token = read_setting("PRISM_TOKEN", "token");
    find_stores(address, token);

    prism_client *c;
    if (prism_connect(NULL, &c) != PRISM_OK) {
        fprintf(stderr, "soak: connect: %s\n", prism_last_error());
        printf("{\"system\": \"prism\", \"bench\": \"soak\", \"error\": \"connect failed\"}\n");
        return 1;
    }
    prism_task_options o = PRISM_TASK_OPTIONS_INIT;
    o.num_cpus = num_cpus;
    prism_ref **refs = calloc((size_t)bsize, sizeof *refs);
    prism_status s = PRISM_OK;
    for (long done = 0; done < warmup && s == PRISM_OK; done += bsize)
        s = batch(c, &o, refs, bsize);
    if (s != PRISM_OK) {
        fprintf(stderr, "soak: warm-up: %s: %s\n", prism_status_text(s), prism_last_error());
        printf("{\"system\": \"prism\", \"bench\": \"soak\", \"error\": \"warm-up failed\"}\n");
        return 1;
    }
    sample_processes(pidfile, true);
    long bytes_warm, bytes_end;
    long objects_warm = store_objects(token, &bytes_warm);
    fprintf(stderr,
            "soak: after %ld warm-up tasks: %zu processes, %ld KiB resident, "
            "%ld objects in %zu object stores\n",
            warmup, nprocs, total_kib(true), objects_warm, nstores);

    long done = 0, step = tasks / 10 > 0 ? tasks / 10 : 1, next_report = step;
    int64_t t0 = bench_now_ns(), limit = (int64_t)(max_seconds * 1e9);
    bool cut = false;
    while (done < tasks) {
        long n = tasks - done < bsize ? tasks - done : bsize;
        if ((s = batch(c, &o, refs, n)) != PRISM_OK)
            break;
        done += n;
        int64_t now = bench_now_ns();
        if (done >= next_report) {
            fprintf(stderr, "soak: %ld tasks, %.0f tasks/s, driver %ld KiB\n", done,
                    (double)done / ((double)(now - t0) / 1e9), bench_rss_kib(getpid()));
            next_report += step;
        }
        if (now - t0 > limit && done < tasks) {
            cut = true;
            break;
        }
    }
    double seconds = (double)(bench_now_ns() - t0) / 1e9;
    if (s != PRISM_OK) {
        fprintf(stderr, "soak: after %ld tasks: %s: %s\n", done, prism_status_text(s),
                prism_last_error());
        printf("{\"system\": \"prism\", \"bench\": \"soak\", \"tasks\": %ld, \"error\": "
               "\"a task failed\"}\n",
               done);
        return 1;
    }
    sample_processes(pidfile, false);
    long objects_end = store_objects(token, &bytes_end);
    free(refs);

    double worst = 0;
    bool new_after_warm = false;
    printf("{\"system\": \"prism\", \"bench\": \"soak\", \"tasks\": %ld, \"target_tasks\": %ld, "
           "\"cut_short\": %s, \"warmup\": %ld, \"seconds\": %.1f, \"rate\": %.0f, "
           "\"unit\": \"tasks/s\", \"processes\": [",
           done, tasks, cut ? "true" : "false", warmup, seconds, (double)done / seconds);
    for (size_t i = 0; i < nprocs; i++) {
        proc *p = &procs[i];
        double pct = p->seen_warm && p->seen_end && p->warm_kib > 0
                         ? 100.0 * (double)(p->end_kib - p->warm_kib) / (double)p->warm_kib
                         : 0;
        if (p->seen_warm && p->seen_end && pct > worst)
            worst = pct;
        if (!p->seen_warm && p->seen_end)
            new_after_warm = true;
        printf("%s{\"name\": \"%s\", \"pid\": %d, \"rss_warm_kib\": %ld, \"rss_end_kib\": %ld, "
               "\"change_pct\": %.1f, \"anon_warm_kib\": %ld, \"anon_end_kib\": %ld%s}",
               i ? ", " : "", p->name, (int)p->pid, p->seen_warm ? p->warm_kib : -1,
               p->seen_end ? p->end_kib : -1, pct, p->seen_warm ? p->warm_anon : -1,
               p->seen_end ? p->end_anon : -1,
               !p->seen_warm  ? ", \"new\": true"
               : !p->seen_end ? ", \"gone\": true"
                              : "");
    }
    bool ok = worst <= 10.0 && objects_end >= 0 && objects_end <= objects_warm;
    printf("], \"total_warm_kib\": %ld, \"total_end_kib\": %ld, \"max_growth_pct\": %.1f, "
           "\"new_processes\": %s, \"store_objects_warm\": %ld, \"store_objects_end\": %ld, "
           "\"store_bytes_end\": %ld, \"stores\": %zu, \"ok\": %s}\n",
           total_kib(true), total_kib(false), worst, new_after_warm ? "true" : "false",
           objects_warm, objects_end, bytes_end, nstores, ok ? "true" : "false");
    fflush(stdout);
    prism_disconnect(c);
    curl_global_cleanup();
    return ok ? 0 : 1;
}
