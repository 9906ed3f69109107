/* The node agent's settings: checks, and the defaults it detects from the machine. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nodeagent.h"
#include "prism_config.h"
#include "prism_fs.h"

#define MAX_GPUS 64

/* Replaces a string option with a heap copy of `value` (the service skeleton frees its options). */
static int set_string(char **slot, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return -1;
    free(*slot);
    *slot = copy;
    return 0;
}

static int resolve_name_and_dir(na_config *c, char *err, size_t errlen)
{
    if (!c->name || !*c->name) {
        char host[256] = "node";
        if (gethostname(host, sizeof host - 1) != 0)
            snprintf(host, sizeof host, "node");
        if (set_string(&c->name, host) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    if (c->state_dir && *c->state_dir && c->state_dir[0] != '/') {
        /* Workers and drivers run elsewhere: their paths must not depend on our cwd. */
        char cwd[NA_PATH_MAX], dir[NA_PATH_MAX];
        if (!getcwd(cwd, sizeof cwd) ||
            snprintf(dir, sizeof dir, "%s/%s", cwd, c->state_dir) >= (int)sizeof dir ||
            set_string(&c->state_dir, dir) != 0) {
            snprintf(err, errlen, "cannot make --state-dir absolute");
            return -1;
        }
    }
    if (c->state_dir && *c->state_dir)
        return 0;
    const char *home = getenv("HOME");
    struct passwd *pw = home ? NULL : getpwuid(getuid());
    if (!home)
        home = pw ? pw->pw_dir : "/tmp";
    if (!prism_safe_name(c->name)) {
        snprintf(err, errlen, "node name '%s' cannot name a directory: give --state-dir", c->name);
        return -1;
    }
    char dir[NA_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/.prism/node-%s", home, c->name);
    if (set_string(&c->state_dir, dir) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int64_t usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

int na_read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char *line = fgets(buf, (int)len, f);
    fclose(f);
    if (!line)
        return -1;
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

/* Physical memory, or the cgroup (v2) limit when that is lower. */
static int64_t usable_memory(void)
{
    int64_t bytes = (int64_t)sysconf(_SC_PHYS_PAGES) * (int64_t)sysconf(_SC_PAGE_SIZE);
    char text[64], *end;
    if (na_read_line("/sys/fs/cgroup/memory.max", text, sizeof text) == 0) {
        long long limit = strtoll(text, &end, 10);
        if (end != text && limit > 0 && limit < bytes)
            bytes = limit;
    }
    return bytes;
}

static int parse_custom(na_config *c, char *err, size_t errlen)
{
    json_error_t jerr;
    c->custom = json_loads(c->resources, 0, &jerr);
    if (!json_is_object(c->custom)) {
        snprintf(err, errlen, "--resources must be a JSON object: %s",
                 c->custom ? "not an object" : jerr.text);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(c->custom, key, v) {
        if (!strcmp(key, "CPU") || !strcmp(key, "GPU") || !strcmp(key, "memory")) {
            snprintf(err, errlen, "--resources: give %s with its own flag", key);
            return -1;
        }
        if (!json_is_number(v) || json_number_value(v) < 0) {
            snprintf(err, errlen, "--resources: '%s' must be a non-negative number", key);
            return -1;
        }
    }
    return 0;
}

/* prism-worker in the directory of this program. */
static int default_worker_bin(na_config *c, char *err, size_t errlen)
{
    char self[NA_PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        snprintf(err, errlen, "cannot find this program (/proc/self/exe): give --worker-bin");
        return -1;
    }
    self[len] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    char path[NA_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/prism-worker", self);
    if (set_string(&c->worker_bin, path) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int resolve_workers(na_config *c, char *err, size_t errlen)
{
    if (c->prestart_workers < 0)
        c->prestart_workers = c->num_cpus < 2 ? c->num_cpus : 2;
    if (c->max_workers < 0)
        c->max_workers = 4 * c->num_cpus < 4 ? 4 : 4 * c->num_cpus;
    if (c->max_workers < 1 || c->prestart_workers > c->max_workers) {
        snprintf(err, errlen, "--max-workers must be positive and at least --prestart-workers");
        return -1;
    }
    if (c->worker_idle_ms <= 0 || c->worker_start_timeout_ms <= 0) {
        snprintf(err, errlen, "--worker-idle-ms and --worker-start-timeout-ms must be positive");
        return -1;
    }
    if (!c->worker_bin || !*c->worker_bin)
        return default_worker_bin(c, err, errlen);
    return 0;
}

static int resolve_amounts(na_config *c, char *err, size_t errlen)
{
    if (c->num_cpus < 0)
        c->num_cpus = usable_cpus();
    if (c->num_gpus < 0)
        c->num_gpus = na_gpu_detect();
    if (c->memory < 0)
        c->memory = usable_memory();
    if (c->num_gpus > MAX_GPUS) {
        snprintf(err, errlen, "--num-gpus: at most %d", MAX_GPUS);
        return -1;
    }
    if (c->heartbeat_ms <= 0 || c->stop_grace_ms < 0 || c->package_timeout_ms <= 0) {
        snprintf(err, errlen,
                 "--heartbeat-ms and --package-timeout-ms must be positive, "
                 "--stop-grace-ms not negative");
        return -1;
    }
    return parse_custom(c, err, errlen);
}

int na_config_check(na_config *c, char *err, size_t errlen)
{
    if (resolve_name_and_dir(c, err, errlen) != 0 || resolve_amounts(c, err, errlen) != 0 ||
        resolve_workers(c, err, errlen) != 0)
        return -1;
    return 0;
}

json_t *na_config_resources(const na_config *c)
{
    json_t *r = json_deep_copy(c->custom);
    if (!r)
        return NULL;
    json_object_set_new(r, "CPU", json_integer(c->num_cpus));
    json_object_set_new(r, "GPU", json_integer(c->num_gpus));
    json_object_set_new(r, "memory", json_integer(c->memory));
    return r;
}
