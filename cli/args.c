#include "args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "prism_config.h"

const char *cli_global_address;
const char *cli_global_token;

static cli_opt global_opts[] = {
    {"address", 0, CLI_STRING, &cli_global_address, "URL",
     "GCS address [PRISM_ADDRESS, else $PRISM_HOME/address]"},
    {"token", 0, CLI_STRING, &cli_global_token, "TOKEN",
     "cluster token [PRISM_TOKEN, else $PRISM_HOME/token]"},
};
#define NGLOBAL (sizeof global_opts / sizeof global_opts[0])

static int list_add(cli_list *l, const char *item)
{
    const char **items = realloc(l->items, (l->n + 1) * sizeof *items);
    if (!items)
        return -1;
    items[l->n++] = item;
    l->items = items;
    return 0;
}

static int set_number(const cli_opt *o, const char *text)
{
    char *end;
    errno = 0;
    if (o->type == CLI_INT) {
        long long v = strtoll(text, &end, 10);
        if (end == text || *end || errno)
            return -1;
        *(int64_t *)o->value = v;
        return 0;
    }
    double v = strtod(text, &end);
    if (end == text || *end || errno || !(v >= 0))
        return -1;
    *(double *)o->value = v;
    return 0;
}

static int set_value(const cli_opt *o, const char *text)
{
    int rc = 0;
    switch (o->type) {
    case CLI_FLAG: *(bool *)o->value = true; break;
    case CLI_STRING: *(const char **)o->value = text; break;
    case CLI_INT:
    case CLI_NUMBER: rc = set_number(o, text); break;
    case CLI_SIZE: rc = prism_parse_size(text, o->value); break;
    case CLI_LIST: rc = list_add(o->value, text); break;
    }
    if (rc != 0)
        fprintf(stderr, "prism: --%s: bad value '%s'%s\n", o->name, text,
                o->type == CLI_SIZE ? " (a size such as 512MiB or 2GiB)" : "");
    return rc;
}

/* Finds "--name" (name of `len` chars) or "-c" in the command's table, then the globals. */
static const cli_opt *find_opt(const cli_command *cmd, const char *name, size_t len, char c)
{
    for (size_t i = 0; i < cmd->nopts + NGLOBAL; i++) {
        const cli_opt *o = i < cmd->nopts ? &cmd->opts[i] : &global_opts[i - cmd->nopts];
        if (c ? o->short_name == c : strlen(o->name) == len && !strncmp(o->name, name, len))
            return o;
    }
    return NULL;
}

/* Handles the flag at argv[*i]. Returns 0, CLI_PARSE_HELP or CLI_PARSE_ERROR. */
static int parse_flag(const cli_command *cmd, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
        cli_print_help(stdout, cmd);
        return CLI_PARSE_HELP;
    }
    bool is_long = arg[1] == '-';
    const char *name = arg + (is_long ? 2 : 1), *eq = is_long ? strchr(name, '=') : NULL;
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const cli_opt *o = is_long ? find_opt(cmd, name, len, 0)
                               : (len == 1 ? find_opt(cmd, NULL, 0, name[0]) : NULL);
    if (!o) {
        fprintf(stderr, "prism: unknown flag '%s' (see --help)\n", arg);
        return CLI_PARSE_ERROR;
    }
    const char *value = eq ? eq + 1 : NULL;
    if (o->type == CLI_FLAG && value) {
        fprintf(stderr, "prism: --%s takes no value\n", o->name);
        return CLI_PARSE_ERROR;
    }
    if (o->type == CLI_FLAG)
        return set_value(o, "");
    if (!value && *i + 1 >= argc) {
        fprintf(stderr, "prism: --%s needs a value\n", o->name);
        return CLI_PARSE_ERROR;
    }
    if (!value)
        value = argv[++*i];
    return set_value(o, value) == 0 ? 0 : CLI_PARSE_ERROR;
}

static int add_positional(const cli_command *cmd, cli_parsed *out, char *arg)
{
    if (out->npos >= cmd->max_pos || out->npos >= CLI_MAX_POS) {
        fprintf(stderr, "prism: unexpected argument '%s' (see --help)\n", arg);
        return CLI_PARSE_ERROR;
    }
    out->pos[out->npos++] = arg;
    return 0;
}

int cli_parse(const cli_command *cmd, int argc, char **argv, cli_parsed *out)
{
    memset(out, 0, sizeof *out);
    out->tail = argc;
    bool flags_done = false;
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        int rc = 0;
        if (!flags_done && !strcmp(arg, "--")) {
            flags_done = true;
            if (cmd->tail) {
                out->tail = i + 1;
                break;
            }
        } else if (!flags_done && arg[0] == '-' && arg[1]) {
            rc = parse_flag(cmd, argc, argv, &i);
        } else if (cmd->tail) {
            out->tail = i;
            break;
        } else {
            rc = add_positional(cmd, out, arg);
        }
        if (rc != 0)
            return rc;
    }
    if (out->npos < cmd->min_pos) {
        fprintf(stderr, "prism: missing argument\nusage: %s\n", cmd->usage);
        return CLI_PARSE_ERROR;
    }
    return CLI_PARSE_OK;
}

static void print_opt(FILE *f, const cli_opt *o)
{
    char left[64];
    if (o->short_name)
        snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
    else
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
    fprintf(f, "  %-26s %s%s\n", left, o->help, o->type == CLI_LIST ? " (repeatable)" : "");
}

void cli_print_help(FILE *f, const cli_command *cmd)
{
    fprintf(f, "usage: %s\n\n%s\n", cmd->usage, cmd->summary);
    if (cmd->nopts > 0)
        fprintf(f, "\nOptions:\n");
    for (size_t i = 0; i < cmd->nopts; i++)
        print_opt(f, &cmd->opts[i]);
    cli_print_global_help(f);
}

void cli_print_global_help(FILE *f)
{
    fprintf(f, "\nGlobal options:\n");
    for (size_t i = 0; i < NGLOBAL; i++)
        print_opt(f, &global_opts[i]);
    fprintf(f, "  %-26s %s\n", "-h, --help", "show this help");
}

void cli_command_free(const cli_command *cmd)
{
    for (size_t i = 0; i < cmd->nopts; i++) {
        if (cmd->opts[i].type != CLI_LIST)
            continue;
        cli_list *l = cmd->opts[i].value;
        free(l->items);
        l->items = NULL;
        l->n = 0;
    }
}

int cli_parse_globals(int argc, char **argv)
{
    static const cli_command none = {.usage = "prism [OPTIONS] COMMAND ..."};
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && strcmp(argv[i], "--help") && strcmp(argv[i], "-h");
         i++) {
        if (parse_flag(&none, argc, argv, &i) != 0)
            return -1;
    }
    return i;
}
