/* The end of a driver: stop requests, the SIGKILL deadline, reaping exits
 * and recording how each job ended. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "nodeagent.h"
#include "prism_time.h"

#define SHUTDOWN_EXTRA_MS 5000 /* past the grace, for processes slow to die */

int na_running_count(const nodeagent *na)
{
    int n = 0;
    for (const na_job *j = na->jobs; j; j = j->next)
        n += j->state == NA_JOB_RUNNING;
    return n;
}

json_t *na_running_jobs(const nodeagent *na)
{
    json_t *a = json_array();
    for (const na_job *j = na->jobs; a && j; j = j->next)
        if (j->state == NA_JOB_RUNNING)
            json_array_append_new(a, json_string(j->id));
    return a;
}

/* Sets state, exit code and message from the wait status. A message set
 * beforehand (the agent killed the driver itself) makes the job FAILED. */
static void classify(na_job *j, int status)
{
    j->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (j->stop_requested) {
        j->state = NA_JOB_STOPPED;
        snprintf(j->message, sizeof j->message, "stopped by request");
    } else if (j->message[0]) {
        j->state = NA_JOB_FAILED;
    } else if (WIFEXITED(status)) {
        j->state = WEXITSTATUS(status) == 0 ? NA_JOB_SUCCEEDED : NA_JOB_FAILED;
        snprintf(j->message, sizeof j->message, "driver exited with code %d", j->exit_code);
    } else {
        j->state = NA_JOB_FAILED;
        snprintf(j->message, sizeof j->message, "driver killed by signal %d", WTERMSIG(status));
    }
}

static void finish(nodeagent *na, na_job *j, int status)
{
    bool by_agent = j->stop_requested || j->message[0];
    classify(j, status);
    j->end_time = prism_now_ms();
    /* A job the agent stopped or killed takes what it left running with it. */
    if (by_agent)
        kill(-j->pid, SIGKILL);
    for (int k = 0; k < j->ngpus; k++)
        na->gpu_used[j->gpus[k]] = false;
    j->ngpus = 0;
    LOG_INFO("job %s: %s (%s)", j->id, na_state_name(j->state), j->message);
    na_link_publish_job(na, j);
    if (na_job_write_status(na, j) == 0)
        na_job_remove(na, j); /* status.json answers for it from now on */
    else
        LOG_ERROR("job %s: cannot write status.json: %s", j->id, strerror(errno));
    prism_metric_set(na->m.running, na_running_count(na));
}

void na_drivers_reap(nodeagent *na)
{
    na_job *next;
    for (na_job *j = na->jobs; j; j = next) {
        next = j->next; /* finish() may free j */
        if (j->state != NA_JOB_RUNNING)
            continue;
        int status = 0;
        pid_t r = waitpid(j->pid, &status, WNOHANG);
        if (r == j->pid) {
            finish(na, j, status);
        } else if (r < 0 && errno == ECHILD) {
            snprintf(j->message, sizeof j->message, "driver vanished (not a child any more)");
            finish(na, j, 0);
        }
    }
}

void na_drivers_enforce_stops(nodeagent *na)
{
    int64_t now = prism_mono_ms();
    for (na_job *j = na->jobs; j; j = j->next) {
        if (j->state != NA_JOB_RUNNING || !j->kill_at_ms || now < j->kill_at_ms)
            continue;
        kill(-j->pid, SIGKILL);
        j->kill_at_ms = 0;
        LOG_INFO("job %s: still running after the grace period, sent SIGKILL", j->id);
    }
}

/* SIGTERM now, SIGKILL at the deadline (enforced by the cron). */
static void terminate(const nodeagent *na, na_job *j)
{
    if (na->cfg.stop_grace_ms == 0) {
        kill(-j->pid, SIGKILL);
        return;
    }
    kill(-j->pid, SIGTERM);
    if (!j->kill_at_ms)
        j->kill_at_ms = prism_mono_ms() + na->cfg.stop_grace_ms;
}

int na_driver_stop(nodeagent *na, na_job *j)
{
    if (j->state == NA_JOB_STARTING) {
        /* Not running yet (so the answer is not_running), and it never will:
         * its start gives up before forking. */
        j->stop_requested = true;
        LOG_INFO("job %s: stop requested while its start is in progress", j->id);
        return -1;
    }
    if (j->state != NA_JOB_RUNNING)
        return -1;
    if (!j->stop_requested) {
        j->stop_requested = true;
        terminate(na, j);
        LOG_INFO("job %s: stop requested, sent SIGTERM to process group %d", j->id, (int)j->pid);
    }
    return 0;
}

void na_drivers_kill_all(nodeagent *na, const char *why)
{
    for (na_job *j = na->jobs; j; j = j->next) {
        if (j->state != NA_JOB_RUNNING)
            continue;
        if (!j->message[0])
            snprintf(j->message, sizeof j->message, "%s", why);
        kill(-j->pid, SIGKILL);
        LOG_INFO("job %s: killed (%s)", j->id, why);
    }
}

/* Stops every driver and waits for them. Called once no NATS handler runs. */
void na_drivers_shutdown(nodeagent *na)
{
    pthread_mutex_lock(&na->lock);
    for (na_job *j = na->jobs; j; j = j->next) {
        if (j->state != NA_JOB_RUNNING)
            continue;
        if (!j->stop_requested && !j->message[0])
            snprintf(j->message, sizeof j->message, "node agent shut down");
        terminate(na, j);
    }
    int64_t give_up = prism_mono_ms() + na->cfg.stop_grace_ms + SHUTDOWN_EXTRA_MS;
    for (;;) {
        na_drivers_reap(na);
        na_drivers_enforce_stops(na);
        int left = na_running_count(na);
        if (left == 0 || prism_mono_ms() >= give_up) {
            if (left)
                LOG_WARN("%d drivers did not exit; leaving them", left);
            break;
        }
        pthread_mutex_unlock(&na->lock);
        prism_sleep_ms(20);
        pthread_mutex_lock(&na->lock);
    }
    pthread_mutex_unlock(&na->lock);
}
