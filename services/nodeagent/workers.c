/* The worker pool: starting prism-worker processes, reading their ready
 * line, reaping them, and keeping the pool's size.
 *
 * A worker is started as (docs/tasks.md)
 *   prism-worker --worker-id HEX --node-id HEX --socket PATH --host HOST
 *                --store-socket PATH [--store-address URL] --gcs-address URL
 *                --nats-url URL --package-dir DIR --ready-fd 3
 * by the launcher thread, in its own process group, PRISM_TOKEN in its
 * environment, output appended to STATE_DIR/workers/ID.log. Once it listens
 * it writes {"unix": PATH, "tcp": "host:port"} and a newline to descriptor 3
 * (one end of a stream socket pair, so write(2) and send(2) both work); the
 * cron reads the other end without blocking. The main loop polls that end
 * and a pidfd of each worker, so that a worker ready or gone is seen at once
 * rather than at the cron's next tick (a lease waiting for a new worker, or
 * an actor created after another was killed, would wait for it). Everything
 * here runs with the agent's lock held (the cron, lease handlers), except
 * the shutdown wait. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nodeagent.h"
#include "prism_fs.h"
#include "prism_time.h"

#define RETRY_FIRST_MS 1000 /* after a failed start; doubles up to RETRY_MAX_MS */
#define RETRY_MAX_MS 30000
#define SHUTDOWN_EXTRA_MS 5000

const char *na_worker_state_name(na_worker_state s)
{
    static const char *const names[] = {"starting", "idle", "leased", "stopping"};
    return names[s];
}

int na_workers_count(const nodeagent *na, na_worker_state state, bool unleased_only)
{
    int n = 0;
    for (const na_worker *w = na->workers; w; w = w->next)
        n += w->state == state && !(unleased_only && (w->lease || w->dedicated));
    return n;
}

/* Workers that are or will be running (those stopping do not count). */
static int alive_count(const nodeagent *na)
{
    int n = 0;
    for (const na_worker *w = na->workers; w; w = w->next)
        n += w->state != NA_WORKER_STOPPING;
    return n;
}

/* ---------- the state directory ---------- */

static void remove_stale_sockets(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[NA_PATH_MAX];
    while (d && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".sock") &&
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path)
            unlink(path); /* the workers of an earlier agent died with it */
    }
    if (d)
        closedir(d);
}

int na_workers_prepare_dir(nodeagent *na, char *err, size_t errlen)
{
    static const char *const dirs[] = {"workers", "worker-packages"};
    char path[NA_PATH_MAX];
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", na->cfg.state_dir, dirs[i]);
        if (prism_mkdir_p(path, 0700) != 0) {
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
            return -1;
        }
    }
    snprintf(na->socket_dir, sizeof na->socket_dir, "%s/workers", na->cfg.state_dir);
    remove_stale_sockets(na->socket_dir);
    /* ID.sock must fit a socket address. A shorter directory is made, not
     * named: a path others can guess (a worker's ID shows in ps) could be
     * taken before the worker binds it. */
    struct sockaddr_un sa;
    const size_t name = 1 + PRISM_ID_HEX_LEN + 5; /* "/ID.sock" */
    if (strlen(na->socket_dir) + name < sizeof sa.sun_path)
        return 0;
    const char *bases[] = {getenv("TMPDIR"), "/tmp"};
    for (size_t i = 0; i < 2; i++) {
        if (!bases[i] || !*bases[i] ||
            strlen(bases[i]) + strlen("/prism-XXXXXX") + name >= sizeof sa.sun_path)
            continue;
        snprintf(na->socket_dir, sizeof na->socket_dir, "%s/prism-XXXXXX", bases[i]);
        if (!mkdtemp(na->socket_dir)) { /* mode 0700 */
            snprintf(err, errlen, "cannot create a directory for the workers' sockets (%s): %s",
                     na->socket_dir, strerror(errno));
            return -1;
        }
        na->socket_dir_made = true;
        return 0;
    }
    snprintf(err, errlen,
             "the workers' sockets would have paths over %zu bytes, in %s/workers and in "
             "$TMPDIR: use a shorter --state-dir",
             sizeof sa.sun_path - 1, na->cfg.state_dir);
    return -1;
}

/* The directory na_workers_prepare_dir made, once the workers are gone. */
static void remove_socket_dir(nodeagent *na)
{
    if (!na->socket_dir_made)
        return;
    remove_stale_sockets(na->socket_dir);
    if (rmdir(na->socket_dir) != 0)
        LOG_WARN("cannot remove %s: %s", na->socket_dir, strerror(errno));
    na->socket_dir_made = false;
}

static void socket_path(const nodeagent *na, na_worker *w)
{
    snprintf(w->socket, sizeof w->socket, "%s/%s.sock", na->socket_dir, w->id);
}

/* ---------- starting ---------- */

static int build_env(const nodeagent *na, const na_worker *w, na_env *env)
{
    int rc = na_env_inherit(env);
    if (na->cfg.token && *na->cfg.token)
        rc |= na_env_set(env, "PRISM_TOKEN", na->cfg.token);
    if (w->ngpus > 0) {
        char devices[512];
        rc |= na_gpu_visible_devices(w->gpus, w->ngpus, devices, sizeof devices);
        rc |= na_env_set(env, "CUDA_VISIBLE_DEVICES", devices);
    } else if (na->cfg.num_gpus > 0) {
        rc |= na_env_set(env, "CUDA_VISIBLE_DEVICES", ""); /* the GPUs are leased separately */
    }
    return rc ? -1 : 0;
}

/* The command line; the strings point into `na`, `w` and `pkg`. */
static void build_argv(const nodeagent *na, const na_worker *w, const char *pkg, char **argv)
{
    const na_config *c = &na->cfg;
    int n = 0;
    argv[n++] = c->worker_bin;
#define ARG(flag, value) (argv[n++] = (char *)(flag), argv[n++] = (char *)(value))
    ARG("--worker-id", w->id);
    ARG("--node-id", na->node_id);
    ARG("--socket", w->socket);
    ARG("--host", c->host);
    if (c->store_socket && *c->store_socket)
        ARG("--store-socket", c->store_socket);
    if (c->store_address && *c->store_address)
        ARG("--store-address", c->store_address);
    if (c->gcs_address && *c->gcs_address)
        ARG("--gcs-address", c->gcs_address);
    ARG("--nats-url", c->nats_url);
    ARG("--package-dir", pkg);
    ARG("--ready-fd", "3");
#undef ARG
    argv[n] = NULL;
}

static int open_log(const nodeagent *na, const na_worker *w)
{
    char path[NA_PATH_MAX];
    snprintf(path, sizeof path, "%s/workers/%s.log", na->cfg.state_dir, w->id);
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

/* Forks the worker with its ready channel. Returns 0 or -1 with `err`. */
static int spawn(nodeagent *na, na_worker *w, char *err, size_t errlen)
{
    char pkg[NA_PATH_MAX], *argv[24];
    na_env env = {0};
    int ready[2] = {-1, -1}, log = open_log(na, w), rc = -1;
    snprintf(pkg, sizeof pkg, "%s/worker-packages", na->cfg.state_dir);
    build_argv(na, w, pkg, argv);
    /* A socket pair rather than a pipe: the worker may write(2) or send(2). */
    if (log < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ready) != 0 ||
        build_env(na, w, &env) != 0) {
        snprintf(err, errlen, "cannot prepare a worker: %s", strerror(errno));
        goto out;
    }
    char dir[NA_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/workers", na->cfg.state_dir);
    na_spawn s = {.argv = argv, .envp = env.v, .dir = dir, .stdout_fd = log, .extra_fd = ready[1]};
    w->pid = na_launcher_spawn(na->launcher, &s);
    if (w->pid < 0) {
        snprintf(err, errlen, "cannot fork a worker: %s", strerror(errno));
        goto out;
    }
    fcntl(ready[0], F_SETFL, O_NONBLOCK);
    w->ready_fd = ready[0];
    ready[0] = -1;
    /* It cannot have been reaped yet: only the cron reaps, under our lock. */
    w->pidfd = pidfd_open(w->pid, 0);
    rc = 0;
out:
    for (int i = 0; i < 2; i++)
        if (ready[i] >= 0)
            close(ready[i]);
    if (log >= 0)
        close(log);
    na_env_free(&env);
    return rc;
}

/* Whether a new worker may start now; `err` says why not. */
static bool may_start(const nodeagent *na, char *err, size_t errlen)
{
    int64_t wait = na->worker_retry_mono - prism_mono_ms();
    if (na->closing)
        snprintf(err, errlen, "the node agent is shutting down");
    else if (alive_count(na) >= na->cfg.max_workers)
        snprintf(err, errlen, "all %lld workers are in use", (long long)na->cfg.max_workers);
    else if (wait > 0)
        snprintf(err, errlen, "workers fail to start (%s); next try in %.1f s", na->worker_error,
                 (double)wait / 1000.0);
    else if (access(na->cfg.worker_bin, X_OK) != 0)
        snprintf(err, errlen, "no worker program %s: %s", na->cfg.worker_bin, strerror(errno));
    else
        return true;
    return false;
}

static void note_failure(nodeagent *na, const char *why)
{
    int64_t delay = RETRY_FIRST_MS;
    for (int i = 0; i < na->worker_failures && delay < RETRY_MAX_MS; i++)
        delay *= 2;
    if (delay > RETRY_MAX_MS)
        delay = RETRY_MAX_MS;
    na->worker_failures++;
    na->worker_retry_mono = prism_mono_ms() + delay;
    snprintf(na->worker_error, sizeof na->worker_error, "%s", why);
    prism_metric_add(na->m.worker_failures, 1);
    prism_log(na->worker_failures == 1 ? PRISM_LOG_WARN : PRISM_LOG_DEBUG,
              "a worker failed to start: %s; next try in %lld ms", why, (long long)delay);
}

/* A worker's devices taken (`sign` 1) or given back (-1): whole, or its share. */
static void hold_gpus(nodeagent *na, const na_worker *w, int sign)
{
    for (int i = 0; i < w->ngpus; i++) {
        if (w->gpu_share > 0)
            na->gpu_share[w->gpus[i]] += sign * w->gpu_share;
        else
            na->gpu_used[w->gpus[i]] = sign > 0;
    }
}

na_worker *na_worker_start(nodeagent *na, const int *gpus, int ngpus, int share, char *err,
                           size_t errlen)
{
    if (!may_start(na, err, errlen))
        return NULL;
    na_worker *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    prism_id id;
    prism_id_random(&id);
    prism_id_to_hex(&id, w->id);
    socket_path(na, w);
    for (int i = 0; i < ngpus; i++)
        w->gpus[w->ngpus++] = gpus[i];
    w->gpu_share = ngpus == 1 ? share : 0;
    w->dedicated = ngpus > 0;
    w->ready_fd = w->pidfd = -1;
    if (spawn(na, w, err, errlen) != 0) {
        note_failure(na, err);
        free(w);
        return NULL;
    }
    hold_gpus(na, w, 1);
    w->state = NA_WORKER_STARTING;
    w->started_ms = prism_now_ms();
    w->started_mono = prism_mono_ms();
    w->next = na->workers;
    na->workers = w;
    na_wake(na); /* the main loop polls its descriptors from now on */
    prism_metric_add(na->m.workers_started, 1);
    LOG_DEBUG("worker %s starting, pid %d%s", w->id, (int)w->pid, w->dedicated ? " (GPUs)" : "");
    return w;
}

/* ---------- stopping and reaping ---------- */

void na_worker_stop(nodeagent *na, na_worker *w)
{
    if (w->state == NA_WORKER_STOPPING)
        return;
    if (w->lease)
        na_lease_free(na, w->lease, "the worker was stopped before it was ready");
    w->state = NA_WORKER_STOPPING;
    na->report_wanted = true;
    if (na->cfg.stop_grace_ms == 0) {
        kill(-w->pid, SIGKILL);
        return;
    }
    kill(-w->pid, SIGTERM);
    w->kill_at_mono = prism_mono_ms() + na->cfg.stop_grace_ms;
}

/* A start that went wrong: the worker is killed and new starts back off. */
static void worker_failed(nodeagent *na, na_worker *w, const char *why)
{
    char msg[NA_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "worker %s: %s (log: %s/workers/%s.log)", w->id, why,
             na->cfg.state_dir, w->id);
    note_failure(na, msg);
    if (w->lease)
        na_lease_free(na, w->lease, msg);
    if (w->state != NA_WORKER_STOPPING) {
        w->state = NA_WORKER_STOPPING;
        kill(-w->pid, SIGKILL);
    }
    na->report_wanted = true;
}

static void worker_free(nodeagent *na, na_worker *w)
{
    for (na_worker **p = &na->workers; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    if (w->ready_fd >= 0)
        close(w->ready_fd);
    if (w->pidfd >= 0)
        close(w->pidfd);
    free(w->unix_path);
    free(w->tcp);
    free(w);
}

static void describe_exit(int status, char *out, size_t len)
{
    if (WIFEXITED(status))
        snprintf(out, len, "exited with code %d", WEXITSTATUS(status));
    else
        snprintf(out, len, "killed by signal %d", WTERMSIG(status));
}

static void worker_exited(nodeagent *na, na_worker *w, int status)
{
    char how[64], why[NA_MESSAGE_MAX];
    describe_exit(status, how, sizeof how);
    if (w->state == NA_WORKER_STARTING) {
        snprintf(why, sizeof why, "%s before it was ready", how);
        worker_failed(na, w, why);
    } else if (w->state != NA_WORKER_STOPPING || w->lease) {
        LOG_WARN("worker %s (pid %d) %s%s%s", w->id, (int)w->pid, how,
                 w->lease ? "; freed its lease " : "", w->lease ? w->lease->id : "");
    }
    if (w->lease)
        na_lease_free(na, w->lease, "the worker died before it was ready");
    kill(-w->pid, SIGKILL); /* what it left behind in its group */
    hold_gpus(na, w, -1);
    unlink(w->socket);
    LOG_DEBUG("worker %s (pid %d) %s", w->id, (int)w->pid, how);
    na->report_wanted = true;
    worker_free(na, w);
}

static void reap(nodeagent *na)
{
    for (na_worker *w = na->workers, *next; w; w = next) {
        next = w->next; /* worker_exited frees w */
        int status = 0;
        pid_t r = waitpid(w->pid, &status, WNOHANG);
        if (r == w->pid || (r < 0 && errno == ECHILD))
            worker_exited(na, w, r == w->pid ? status : 0);
    }
}

/* ---------- the ready line ---------- */

static int parse_ready(na_worker *w)
{
    json_t *doc = json_loadb(w->ready, w->ready_len, JSON_DISABLE_EOF_CHECK, NULL);
    const char *unix_path = json_string_value(json_object_get(doc, "unix"));
    const char *tcp = json_string_value(json_object_get(doc, "tcp"));
    int rc = -1;
    if (unix_path && *unix_path) {
        w->unix_path = strdup(unix_path);
        w->tcp = tcp && *tcp ? strdup(tcp) : NULL;
        rc = w->unix_path ? 0 : -1;
    }
    json_decref(doc);
    return rc;
}

static void worker_ready(nodeagent *na, na_worker *w)
{
    close(w->ready_fd);
    w->ready_fd = -1;
    if (parse_ready(w) != 0) {
        worker_failed(na, w, "its ready line is not {\"unix\": PATH, \"tcp\": \"host:port\"}");
        return;
    }
    na->worker_failures = 0;
    na->report_wanted = true;
    w->idle_since_mono = prism_mono_ms();
    LOG_DEBUG("worker %s ready in %lld ms at %s", w->id,
              (long long)(prism_mono_ms() - w->started_mono), w->unix_path);
    if (w->lease)
        na_lease_worker_ready(na, w);
    else if (w->dedicated)
        na_worker_stop(na, w); /* its lease was returned meanwhile */
    else
        w->state = NA_WORKER_IDLE;
}

/* Reads what the worker wrote to its ready channel so far. */
static void read_ready(nodeagent *na, na_worker *w)
{
    for (;;) {
        size_t room = sizeof w->ready - 1 - w->ready_len;
        ssize_t n = room ? read(w->ready_fd, w->ready + w->ready_len, room) : 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return; /* EAGAIN: nothing yet */
        w->ready_len += (size_t)n;
        w->ready[w->ready_len] = '\0';
        if (memchr(w->ready, '\n', w->ready_len))
            worker_ready(na, w);
        else if (!room)
            worker_failed(na, w, "its ready line is too long");
        else if (n == 0 && w->ready_len > 0)
            worker_ready(na, w); /* the line without its newline, then EOF */
        else if (n == 0)
            worker_failed(na, w, "it closed its ready descriptor without writing");
        else
            continue;
        return;
    }
}

/* ---------- the cron ---------- */

static void enforce_deadlines(nodeagent *na)
{
    int64_t now = prism_mono_ms();
    for (na_worker *w = na->workers; w; w = w->next) {
        if (w->state == NA_WORKER_STARTING && w->ready_fd >= 0)
            read_ready(na, w);
        if (w->state == NA_WORKER_STARTING &&
            now - w->started_mono > na->cfg.worker_start_timeout_ms)
            worker_failed(na, w, "not ready in time (--worker-start-timeout-ms)");
        if (w->state == NA_WORKER_STOPPING && w->kill_at_mono && now >= w->kill_at_mono) {
            kill(-w->pid, SIGKILL);
            w->kill_at_mono = 0;
        }
        na_lease *l = w->lease;
        if (l && l->reply && now > l->deadline_mono) {
            LOG_INFO("lease %s: the asker gave up before worker %s was ready", l->id, w->id);
            na_lease_free(na, l, NULL);
            if (w->dedicated)
                na_worker_stop(na, w);
        }
    }
}

/* Idle pool workers beyond the prestart count, idle past --worker-idle-ms, stop. */
static void trim_idle(nodeagent *na)
{
    int64_t now = prism_mono_ms();
    int spare = na_workers_count(na, NA_WORKER_IDLE, true) - (int)na->cfg.prestart_workers;
    while (spare > 0) {
        na_worker *oldest = NULL;
        for (na_worker *w = na->workers; w; w = w->next)
            if (w->state == NA_WORKER_IDLE && !w->dedicated &&
                (!oldest || w->idle_since_mono < oldest->idle_since_mono))
                oldest = w;
        if (!oldest || now - oldest->idle_since_mono < na->cfg.worker_idle_ms)
            return;
        LOG_DEBUG("worker %s idle for %lld ms: stopping it", oldest->id,
                  (long long)(now - oldest->idle_since_mono));
        na_worker_stop(na, oldest);
        spare--;
    }
}

/* Keeps --prestart-workers pool workers idle or starting. */
static void prestart(nodeagent *na)
{
    char err[NA_MESSAGE_MAX];
    int ready = na_workers_count(na, NA_WORKER_IDLE, true) +
                na_workers_count(na, NA_WORKER_STARTING, true);
    for (; ready < na->cfg.prestart_workers; ready++)
        if (!na_worker_start(na, NULL, 0, 0, err, sizeof err))
            return;
}

int na_workers_pollfds(const nodeagent *na, struct pollfd **fds, size_t *cap, size_t first)
{
    size_t n = first;
    for (const na_worker *w = na->workers; w; w = w->next) {
        int mine[2] = {w->pidfd, w->state == NA_WORKER_STARTING ? w->ready_fd : -1};
        for (int i = 0; i < 2; i++) {
            if (mine[i] < 0)
                continue;
            if (n == *cap) {
                size_t grown = *cap ? *cap * 2 : 16;
                struct pollfd *p = realloc(*fds, grown * sizeof *p);
                if (!p)
                    return -1;
                *fds = p;
                *cap = grown;
            }
            (*fds)[n++] = (struct pollfd){.fd = mine[i], .events = POLLIN};
        }
    }
    return (int)(n - first);
}

void na_wake(nodeagent *na)
{
    uint64_t one = 1;
    if (na->wake_fd >= 0 && write(na->wake_fd, &one, sizeof one) < 0)
        return; /* the counter is full: the loop is woken anyway */
}

void na_workers_cron(nodeagent *na)
{
    enforce_deadlines(na);
    reap(na);
    trim_idle(na);
    if (!na->closing)
        prestart(na);
}

/* ---------- the end ---------- */

void na_workers_kill_all(nodeagent *na, const char *why)
{
    while (na->leases)
        na_lease_free(na, na->leases, why);
    for (na_worker *w = na->workers; w; w = w->next) {
        if (w->state != NA_WORKER_STOPPING || w->kill_at_mono) {
            w->state = NA_WORKER_STOPPING;
            w->kill_at_mono = 0;
            kill(-w->pid, SIGKILL);
        }
    }
    na->report_wanted = true;
}

void na_workers_shutdown(nodeagent *na)
{
    pthread_mutex_lock(&na->lock);
    while (na->leases)
        na_lease_free(na, na->leases, "the node agent is shutting down");
    for (na_worker *w = na->workers; w; w = w->next)
        na_worker_stop(na, w);
    int64_t give_up = prism_mono_ms() + na->cfg.stop_grace_ms + SHUTDOWN_EXTRA_MS;
    while (na->workers && prism_mono_ms() < give_up) {
        enforce_deadlines(na);
        reap(na);
        pthread_mutex_unlock(&na->lock);
        prism_sleep_ms(20);
        pthread_mutex_lock(&na->lock);
    }
    if (na->workers)
        LOG_WARN("some workers did not exit; leaving them");
    while (na->workers)
        worker_free(na, na->workers);
    pthread_mutex_unlock(&na->lock);
    remove_socket_dir(na);
}

/* ---------- REST ---------- */

static json_t *worker_json(const na_worker *w)
{
    json_t *gpus = json_array();
    for (int i = 0; i < w->ngpus; i++)
        json_array_append_new(gpus, json_integer(w->gpus[i]));
    const na_lease *l = w->lease;
    /* A copy, not a reference: the answer is written out after the agent's
     * lock is let go, while the lease may end and free its own. */
    return json_pack("{s:s,s:s,s:i,s:s?,s:s?,s:s?,s:s?,s:o?,s:o,s:b,s:I}", "worker_id", w->id,
                     "state", na_worker_state_name(w->state), "pid", (int)w->pid, "lease_id",
                     l ? l->id : NULL, "owner_id", l ? l->owner_id : NULL, "unix", w->unix_path,
                     "tcp", w->tcp, "resources", l ? json_deep_copy(l->resources) : NULL, "gpus",
                     gpus, "dedicated", w->dedicated, "started", (json_int_t)w->started_ms);
}

json_t *na_workers_json(nodeagent *na)
{
    json_t *list = json_array();
    for (const na_worker *w = na->workers; list && w; w = w->next)
        json_array_append_new(list, worker_json(w));
    return list;
}
