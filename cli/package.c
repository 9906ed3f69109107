/* prism package upload: POST /api/v1/packages with a file's bytes, or with a
 * directory archived by tar -czf first. */
#include "package.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "format.h"
#include "prism_fs.h"

#define MAX_PACKAGE (1ull << 30)
#define UPLOAD_TIMEOUT_MS 600000

/* Archives `dir` into a new temporary file whose name goes to `out`. Returns 0 or -1. */
static int archive_dir(const char *dir, char *out, size_t n)
{
    const char *tmpdir = getenv("TMPDIR");
    snprintf(out, n, "%s/prism-package-XXXXXX.tar.gz", tmpdir && *tmpdir ? tmpdir : "/tmp");
    int fd = mkstemps(out, 7);
    if (fd < 0) {
        fprintf(stderr, "prism: cannot create a temporary file: %s\n", strerror(errno));
        return -1;
    }
    close(fd);
    char *const argv[] = {"tar", "-czf", out, "-C", (char *)dir, ".", NULL};
    int status = -1;
    pid_t pid = fork();
    if (pid == 0) {
        execvp(argv[0], argv);
        fprintf(stderr, "prism: cannot run tar: %s\n", strerror(errno));
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, &status, 0);
    if (pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    fprintf(stderr, "prism: tar -czf of %s failed\n", dir);
    unlink(out);
    return -1;
}

/* POSTs the bytes; checks the cluster's sha256 against ours. */
static int post(cli_client *c, const char *data, size_t len, char sha[PRISM_SHA256_HEX_LEN + 1])
{
    prism_httpc_resp resp = {0};
    char err[512];
    if (prism_httpc_request(c->http, "POST", "/api/v1/packages", "application/octet-stream", data,
                            len, UPLOAD_TIMEOUT_MS, 0, &resp, err, sizeof err) != 0) {
        cli_report_error(c, 0, NULL, err);
        return -1;
    }
    json_t *doc = json_loadb(resp.body ? resp.body : "", resp.len, 0, NULL);
    int rc = -1;
    prism_sha256_hex(data, len, sha);
    if (resp.status < 200 || resp.status >= 300)
        cli_report_error(c, resp.status, doc, NULL);
    else if (strcmp(fmt_str(doc, "sha256", ""), sha) != 0)
        fprintf(stderr, "prism: the cluster stored sha256 %s, not %s\n",
                fmt_str(doc, "sha256", "?"), sha);
    else
        rc = 0;
    json_decref(doc);
    prism_httpc_resp_free(&resp);
    return rc;
}

int package_upload(cli_client *c, const char *path, char sha[PRISM_SHA256_HEX_LEN + 1])
{
    struct stat st;
    char archive[4096] = "";
    if (stat(path, &st) != 0) {
        fprintf(stderr, "prism: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode) && archive_dir(path, archive, sizeof archive) != 0)
        return -1;
    const char *file = archive[0] ? archive : path;
    size_t len = 0;
    char *data = prism_read_file(file, MAX_PACKAGE, &len);
    int rc = -1;
    if (!data)
        fprintf(stderr, "prism: cannot read %s: %s\n", file,
                errno == EFBIG ? "larger than 1 GiB" : strerror(errno));
    else
        rc = post(c, data, len, sha);
    free(data);
    if (archive[0])
        unlink(archive);
    return rc;
}

static int upload_run(const char *path)
{
    cli_client c;
    char sha[PRISM_SHA256_HEX_LEN + 1];
    if (cli_client_open(&c) != 0)
        return CLI_EXIT_FAIL;
    int rc = package_upload(&c, path, sha) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (rc == CLI_EXIT_OK)
        printf("%s\n", sha);
    cli_client_close(&c);
    return rc;
}

static int package_upload_cmd(int argc, char **argv)
{
    cli_command cmd = {
        .usage = "prism package upload PATH",
        .summary = "Uploads a file as is, or a directory as a .tar.gz archive, and prints the\n"
                   "package's sha256: pass it to `prism job submit --working-dir`.",
        .min_pos = 1,
        .max_pos = 1,
    };
    cli_parsed p;
    int rc = cli_parse_exit(cli_parse(&cmd, argc, argv, &p));
    return rc >= 0 ? rc : upload_run(p.pos[0]);
}

int cmd_package(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "upload"))
        return package_upload_cmd(argc - 1, argv + 1);
    bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    if (argc >= 2 && !help)
        fprintf(stderr, "prism: unknown package command '%s'\n", argv[1]);
    fprintf(help ? stdout : stderr,
            "usage: prism package upload PATH\n\nCommands:\n"
            "  upload   upload a file or directory as a package and print its sha256\n");
    return help ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}
