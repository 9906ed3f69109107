/* The subcommands of the prism command. Each takes its own argv (argv[0] is
 * the subcommand's name) and returns the process exit status: 0 on success,
 * 1 on failure, 2 on a usage error. */
#ifndef PRISM_CLI_H
#define PRISM_CLI_H

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

int cmd_up(int argc, char **argv);        /* cluster.c */
int cmd_down(int argc, char **argv);      /* cluster.c */
int cmd_status(int argc, char **argv);    /* status.c */
int cmd_job(int argc, char **argv);       /* job.c */
int cmd_package(int argc, char **argv);   /* package.c */
int cmd_task(int argc, char **argv);      /* task.c */
int cmd_object(int argc, char **argv);    /* task.c */
int cmd_actor(int argc, char **argv);     /* actor.c */
int cmd_pg(int argc, char **argv);        /* pg.c */
int cmd_dag(int argc, char **argv);       /* dag.c */
int cmd_dashboard(int argc, char **argv); /* dashboard.c */
int cmd_data(int argc, char **argv);      /* data.c */
int cmd_timeline(int argc, char **argv);  /* timeline.c */

/* Maps a cli_parse result to a finished exit status, or -1 to go on. */
int cli_parse_exit(int parse_rc);

#endif
