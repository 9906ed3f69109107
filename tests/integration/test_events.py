"""NATS events: every job state change and node up/down is published."""
from harness import NatsSubscriber, run, wait_until


def test_job_events(c):
    sub = NatsSubscriber(c.nats_port, c.token, "prism.event.>")
    try:
        ok = c.submit("echo ok")
        bad = c.submit("exit 7")
        c.wait_job(ok)
        c.wait_job(bad)

        def states(jid):
            return [e["state"] for s, e in sub.events() if s == "prism.event.job" and e["job_id"] == jid]

        wait_until(lambda: states(ok)[-1:] == ["SUCCEEDED"], what="events of %s" % ok)
        wait_until(lambda: states(bad)[-1:] == ["FAILED"], what="events of %s" % bad)
        assert states(ok) == ["PENDING", "RUNNING", "SUCCEEDED"] or \
            states(ok) == ["PENDING", "SUCCEEDED"], states(ok)
        failed = [e for s, e in sub.events() if s == "prism.event.job" and e["job_id"] == bad][-1]
        assert failed["exit_code"] == 7 and failed["node_id"], failed
        c.nodes["node-1"].kill()
        wait_until(lambda: any(s == "prism.event.node" and e["state"] == "DEAD"
                               for s, e in sub.events()), what="node DEAD event")
        c.start_node("node-1")
        wait_until(lambda: sum(1 for s, e in sub.events()
                               if s == "prism.event.node" and e["state"] == "ALIVE") >= 1,
                   what="node ALIVE event")
    finally:
        sub.close()


if __name__ == "__main__":
    run([test_job_events], nodes=1)
