/* Unit tests of libs/service: the token precedence, the common options
 * merged with a service's own, and the skeleton's order of hooks and
 * periodic jobs (no NATS, no HTTP: the service here has neither). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "prism_service.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static char file_a[64], file_b[64];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int files_setup(void **state)
{
    snprintf(file_a, sizeof file_a, "/tmp/prism-test-token-a-%d", (int)getpid());
    snprintf(file_b, sizeof file_b, "/tmp/prism-test-token-b-%d", (int)getpid());
    write_file(file_a, "from-file-a\n");
    write_file(file_b, "from-file-b trailing words\n");
    return 0;
}

static int files_teardown(void **state)
{
    unlink(file_a);
    unlink(file_b);
    return 0;
}

/* ---------- the resolver ---------- */

static const char *resolved(const prism_token_sources *src, bool required)
{
    static char last[64];
    char *tok = NULL, err[256] = "";
    if (prism_token_resolve(&tok, src, required, err, sizeof err) != 0)
        return "ERROR";
    snprintf(last, sizeof last, "%s", tok ? tok : "NONE");
    free(tok);
    return last;
}

static void test_token_precedence(void **state)
{
    static const struct {
        prism_token_sources src;
        const char *want;
    } cases[] = {
        /* --no-auth beats everything */
        {{true, "flag", file_a, "env", file_b}, "NONE"},
        {{true, NULL, NULL, "env", NULL}, "NONE"},
        /* then --token, --token-file, PRISM_TOKEN, PRISM_TOKEN_FILE */
        {{false, "flag", file_a, "env", file_b}, "flag"},
        {{false, NULL, file_a, "env", file_b}, "from-file-a"},
        {{false, "", file_a, "env", NULL}, "from-file-a"}, /* empty is not given */
        {{false, NULL, NULL, "env", file_b}, "env"},
        {{false, NULL, NULL, NULL, file_b}, "from-file-b"}, /* the file's first word */
        /* nothing: an error when a token is required */
        {{false, NULL, NULL, NULL, NULL}, "ERROR"},
        {{false, "", "", "", ""}, "ERROR"},
        /* a flag's file that cannot be read is an error, not a fall-through */
        {{false, NULL, "/nonexistent/token", "env", NULL}, "ERROR"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const char *got = resolved(&cases[i].src, true);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu: wanted %s, got %s", i, cases[i].want, got);
    }
    prism_token_sources none = {0};
    assert_string_equal(resolved(&none, false), "NONE"); /* optional: auth off */
}

static void test_token_empty_file(void **state)
{
    write_file(file_a, "\n");
    prism_token_sources src = {.flag_file = file_a};
    char *tok = NULL, err[256] = "";
    assert_int_equal(prism_token_resolve(&tok, &src, true, err, sizeof err), -1);
    assert_non_null(strstr(err, "empty"));
    assert_null(tok);
}

/* ---------- the skeleton ---------- */

typedef struct fake_service {
    char *color;
    int64_t size;
    prism_metrics *metrics;
    prism_bus *bus;
    char *token;    /* as configure() saw it */
    char *nats_url; /* likewise */
    int64_t port;
    char color_seen[16];
    char trace[256];
    int fast_runs, slow_runs;
} fake_service;

static fake_service fs;

static prism_option fake_options[] = {
    {"color", PRISM_OPT_STRING, &fs.color, "blue", "a color"},
    {"size", PRISM_OPT_SIZE, &fs.size, "1KiB", "a size"},
};

static void trace(const char *what)
{
    size_t n = strlen(fs.trace);
    snprintf(fs.trace + n, sizeof fs.trace - n, "%s%s", n ? "," : "", what);
}

static int fake_configure(void *ctx, const prism_service_settings *s, char *err, size_t errlen)
{
    trace("configure");
    free(fs.token);
    free(fs.nats_url);
    fs.token = s->token ? strdup(s->token) : NULL;
    fs.nats_url = s->nats_url ? strdup(s->nats_url) : NULL;
    fs.port = s->port;
    snprintf(fs.color_seen, sizeof fs.color_seen, "%s", fs.color);
    if (!strcmp(fs.color, "red")) {
        snprintf(err, errlen, "--color: red is refused");
        return -1;
    }
    return 0;
}

static int fake_init(void *ctx, char *err, size_t errlen)
{
    trace(fs.metrics ? "init(metrics)" : "init");
    return 0;
}

static int fake_start(void *ctx, char *err, size_t errlen)
{
    trace(fs.bus ? "start(bus)" : "start");
    return 0;
}

static int fake_serving(void *ctx, const char *url, char *err, size_t errlen)
{
    trace("serving");
    return 0;
}

/* Ticks until the slow job has run once: the fast one must have run often. */
static int fake_run(void *ctx, prism_service *svc)
{
    trace("run");
    for (int i = 0; i < 2000 && fs.slow_runs == 0; i++) {
        int wait = prism_service_tick(svc);
        assert_true(wait >= 1 && wait <= 30);
        usleep(1000);
    }
    return 0;
}

static void fake_stop(void *ctx) { trace("stop"); }
static void fake_cleanup(void *ctx) { trace("cleanup"); }
static void fast_job(void *ctx) { fs.fast_runs++; }
static void slow_job(void *ctx) { fs.slow_runs++; }

static const prism_service_job fake_jobs[] = {{"fast", 1, fast_job}, {"slow", 30, slow_job}};

static const prism_service_def fake_def = {
    .name = "fake",
    .usage = "usage: prism-fake [options]",
    .options = fake_options,
    .noptions = ARRAY_LEN(fake_options),
    .default_port = "4321",
    .jobs = fake_jobs,
    .njobs = ARRAY_LEN(fake_jobs),
    .ctx = &fs,
    .metrics = &fs.metrics,
    .bus = &fs.bus,
    .configure = fake_configure,
    .init = fake_init,
    .start = fake_start,
    .serving = fake_serving,
    .run = fake_run,
    .stop = fake_stop,
    .cleanup = fake_cleanup,
};

static const char *const env_names[] = {"PRISM_TOKEN", "PRISM_TOKEN_FILE", "PRISM_NO_AUTH",
                                        "PRISM_COLOR", "PRISM_PORT",       "PRISM_NATS_URL"};

static int service_setup(void **state)
{
    files_setup(state);
    for (size_t i = 0; i < ARRAY_LEN(env_names); i++)
        unsetenv(env_names[i]);
    return 0;
}

static int service_teardown(void **state)
{
    service_setup(state);
    files_teardown(state);
    free(fs.token);
    free(fs.nats_url);
    memset(&fs, 0, sizeof fs);
    return 0;
}

/* Runs the fake service with `args` (NULL-terminated). */
static int run_fake(const char *const *args)
{
    char *argv[16] = {"prism-fake"};
    int argc = 1;
    while (args[argc - 1])
        argv[argc] = (char *)args[argc - 1], argc++;
    free(fs.token);
    free(fs.nats_url);
    fs.token = fs.nats_url = NULL;
    fs.trace[0] = '\0';
    fs.fast_runs = fs.slow_runs = 0;
    return prism_service_main(&fake_def, argc, argv);
}

static void test_service_token_precedence(void **state)
{
    /* --no-auth beats PRISM_TOKEN: the case the services once disagreed on */
    setenv("PRISM_TOKEN", "env", 1);
    assert_int_equal(run_fake((const char *[]){"--no-auth", NULL}), 0);
    assert_null(fs.token);
    setenv("PRISM_NO_AUTH", "1", 1);
    assert_int_equal(run_fake((const char *[]){"--token", "flag", NULL}), 0);
    assert_null(fs.token);
    unsetenv("PRISM_NO_AUTH");

    /* a flag beats the environment, whichever of token and file each gives */
    assert_int_equal(run_fake((const char *[]){"--token-file", file_a, NULL}), 0);
    assert_string_equal(fs.token, "from-file-a");
    setenv("PRISM_TOKEN_FILE", file_b, 1);
    assert_int_equal(run_fake((const char *[]){"--token=flag", NULL}), 0);
    assert_string_equal(fs.token, "flag");
    assert_int_equal(run_fake((const char *[]){NULL}), 0);
    assert_string_equal(fs.token, "env"); /* PRISM_TOKEN before PRISM_TOKEN_FILE */
    unsetenv("PRISM_TOKEN");
    assert_int_equal(run_fake((const char *[]){NULL}), 0);
    assert_string_equal(fs.token, "from-file-b");
    unsetenv("PRISM_TOKEN_FILE");

    /* none at all: a configuration error, before any hook */
    assert_int_equal(run_fake((const char *[]){NULL}), 2);
    assert_string_equal(fs.trace, "");
}

static void test_service_options(void **state)
{
    /* the common options and the service's own, from one table */
    setenv("PRISM_COLOR", "green", 1);
    assert_int_equal(run_fake((const char *[]){"--token", "t", "--size=2KiB", NULL}), 0);
    assert_string_equal(fs.color_seen, "green");
    assert_null(fs.color); /* the skeleton frees the strings of the table */
    assert_int_equal(fs.size, 2048);
    assert_int_equal(fs.port, 4321); /* default_port */
    assert_null(fs.nats_url);        /* no default_nats_url */
    assert_int_equal(run_fake((const char *[]){"--token", "t", "--port", "70000", NULL}), 2);
    assert_int_equal(run_fake((const char *[]){"--token", "t", "--log-level", "loud", NULL}), 2);
    assert_int_equal(run_fake((const char *[]){"--token", "t", "--colour", "x", NULL}), 2);
    assert_int_equal(run_fake((const char *[]){"--token", "t", "--color", "red", NULL}), 2);
    assert_string_equal(fs.trace, "configure");
    assert_int_equal(run_fake((const char *[]){"--help", NULL}), 0);
    assert_string_equal(fs.trace, "");
    assert_int_equal(run_fake((const char *[]){"--print-routes", NULL}), 0); /* no token needed */
    assert_string_equal(fs.trace, "");
}

static void test_service_hooks_and_jobs(void **state)
{
    assert_int_equal(run_fake((const char *[]){"--token", "t", "--nats-url", "", NULL}), 0);
    /* the metrics registry before init(); no bus without a NATS URL */
    assert_string_equal(fs.trace, "configure,init(metrics),start,serving,run,stop,cleanup");
    assert_int_equal(fs.slow_runs, 1);
    assert_true(fs.fast_runs > 5);
    assert_null(fs.metrics); /* freed and cleared by the teardown */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_token_precedence, files_setup, files_teardown),
        cmocka_unit_test_setup_teardown(test_token_empty_file, files_setup, files_teardown),
        cmocka_unit_test_setup_teardown(test_service_token_precedence, service_setup,
                                        service_teardown),
        cmocka_unit_test_setup_teardown(test_service_options, service_setup, service_teardown),
        cmocka_unit_test_setup_teardown(test_service_hooks_and_jobs, service_setup,
                                        service_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
