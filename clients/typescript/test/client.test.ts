/**
 * The client against a live cluster: tests/integration/test_client_typescript.py
 * starts one (GCS, scheduler, a node, the dataservice), makes an actor, and
 * runs this with PRISM_ADDRESS, PRISM_TOKEN and PRISM_TEST_ACTOR_ID set.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import { Prism, PrismError, fromEnv } from "../src/index.js";

const prism: Prism = fromEnv();

test("submit a job and follow its log until it ends", async () => {
    const job = await prism.submitJob({
        entrypoint: "for i in 1 2 3; do echo line-$i; sleep 0.3; done",
        env: { GREETING: "hi" },
    });
    assert.equal(job.state, "PENDING");
    let text = "";
    let chunks = 0;
    for await (const chunk of prism.followLogs(job.job_id)) {
        text += chunk;
        chunks++;
    }
    assert.equal(text, "line-1\nline-2\nline-3\n");
    assert.ok(chunks >= 1);
    const ended = await prism.waitJob(job.job_id, { timeoutMs: 30_000 });
    assert.equal(ended.state, "SUCCEEDED");
    assert.equal(ended.driver_exit_code, 0);
    assert.equal(await prism.jobLogs(job.job_id), text);
});

test("wait for a job that fails", async () => {
    const job = await prism.submitJob({ entrypoint: "echo $GREETING; exit 3", env: { GREETING: "bye" } });
    const ended = await prism.waitJob(job.job_id, { timeoutMs: 30_000, intervalMs: 50 });
    assert.equal(ended.state, "FAILED");
    assert.equal(ended.driver_exit_code, 3);
    assert.equal(await prism.jobLogs(job.job_id), "bye\n");
});

test("errors are PrismErrors with the API's code", async () => {
    await assert.rejects(prism.getJob("no-such-job"), (e: unknown) => {
        assert.ok(e instanceof PrismError);
        assert.equal(e.status, 404);
        assert.equal(e.code, "not_found");
        return true;
    });
    const bad = new Prism({ address: process.env["PRISM_ADDRESS"] ?? "", token: "wrong" });
    await assert.rejects(bad.listActors(), { status: 401, code: "unauthorized" });
});

test("submit a task and get its object", async () => {
    const submitted = await prism.submitTask({ package: "builtin", function: "add", args: [2, 40] });
    assert.equal(submitted.object_ids.length, 1);
    const id = submitted.object_ids[0];
    assert.ok(id);
    const object = await prism.getObject(id, { timeoutMs: 30_000 });
    assert.equal(object.state, "READY");
    assert.deepEqual(object.value, { kind: "json", value: 42 });
});

test("list actors and kill one", async () => {
    const actorId = process.env["PRISM_TEST_ACTOR_ID"];
    assert.ok(actorId, "PRISM_TEST_ACTOR_ID is set by the test that starts the cluster");
    const list = await prism.listActors({ class: "Counter", limit: 10 });
    const actor = list.actors.find((a) => a.actor_id === actorId);
    assert.ok(actor, "the actor is listed");
    assert.notEqual(actor.state, "DEAD");
    const killed = await prism.killActor(actorId, { noRestart: true });
    assert.equal(killed.state, "DEAD");
    const dead = await prism.listActors({ state: "DEAD" });
    assert.ok(dead.actors.some((a) => a.actor_id === actorId));
});

test("run a dataset and read its rows", async () => {
    const dataset = await prism.createDataset({ ops: [{ op: "range", n: 10 }] });
    const taken = await prism.takeRows(dataset.dataset_id, 10, 60_000);
    assert.equal(taken.complete, true);
    const ids = taken.rows.map((row) => row["id"]).sort((a, b) => Number(a) - Number(b));
    assert.deepEqual(ids, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test("the raw typed client reaches every route", async () => {
    const { data, error } = await prism.api.GET("/api/v1/cluster");
    assert.equal(error, undefined);
    assert.ok(data);
    assert.equal(data.nodes_alive, 1);
});
