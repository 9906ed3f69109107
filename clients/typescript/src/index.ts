/**
 * A typed client of Prism's GCS REST API (openapi/gcs.yaml).
 *
 * `Prism` wraps what users do most: submit a job and follow its log, wait
 * for a job, submit a task and get its object, list and kill actors, run a
 * dataset and read its rows. Everything else is on `prism.api`, the
 * openapi-fetch client typed by the generated `paths` (src/gcs.ts, made by
 * scripts/generate.sh: never edited by hand).
 */
import createClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./gcs.js";

export type { components, paths, operations } from "./gcs.js";

type Schemas = components["schemas"];
export type Job = Schemas["Job"];
export type JobState = Schemas["JobState"];
export type JobSubmitRequest = Schemas["JobSubmitRequest"];
export type TaskSubmit = Schemas["TaskSubmit"];
export type TaskSubmitted = Schemas["TaskSubmitted"];
export type ObjectValue = Schemas["ObjectValue"];
export type Actor = Schemas["Actor"];
export type ActorList = Schemas["ActorList"];
export type Plan = Schemas["Plan"];
export type Dataset = Schemas["Dataset"];
export type ApiError = Schemas["Error"];
export type TakenRows =
    paths["/api/v1/datasets/{id}/rows"]["get"]["responses"][200]["content"]["application/json"];

/** The states a job never leaves. */
export const TERMINAL_JOB_STATES: readonly JobState[] = ["SUCCEEDED", "FAILED", "STOPPED"];

/** An error answer of the API: its HTTP status and its stable `code`. */
export class PrismError extends Error {
    readonly status: number;
    readonly code: string;

    constructor(status: number, code: string, message: string) {
        super(`${code} (HTTP ${status}): ${message}`);
        this.name = "PrismError";
        this.status = status;
        this.code = code;
    }
}

/** A wait that ran out of time (`waitJob`, `getObject`). */
export class PrismTimeoutError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "PrismTimeoutError";
    }
}

export interface PrismOptions {
    /** The GCS's URL, e.g. the contents of ~/.prism/address after `prism up`. */
    address: string;
    /** The cluster token (~/.prism/token); sent as `Authorization: Bearer`. */
    token: string;
    /** A fetch to use instead of the global one. */
    fetch?: typeof globalThis.fetch;
}

export interface WaitOptions {
    /** Give up after this long (default 60 s). */
    timeoutMs?: number;
    /** Time between two looks (default 200 ms). */
    intervalMs?: number;
}

function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Throws the API's error envelope as a PrismError. */
function fail(response: Response, error: unknown): never {
    const e = (error as Partial<ApiError> | undefined)?.error;
    throw new PrismError(
        response.status,
        e?.code ?? "unknown",
        e?.message ?? (response.statusText || "no message"),
    );
}

/** The data of a successful answer, or the error thrown. */
function ok<T>(r: { data?: T; error?: unknown; response: Response }): T {
    if (r.error !== undefined || r.data === undefined) {
        fail(r.response, r.error);
    }
    return r.data;
}

export class Prism {
    /** The typed client of every route of openapi/gcs.yaml. */
    readonly api: Client<paths>;

    constructor(options: PrismOptions) {
        this.api = createClient<paths>({
            baseUrl: options.address.replace(/\/+$/, ""),
            headers: { Authorization: `Bearer ${options.token}` },
            ...(options.fetch ? { fetch: options.fetch } : {}),
        });
    }

    // ---- jobs

    /** Submits a job (a shell command run on a node); answers the job, PENDING. */
    async submitJob(request: JobSubmitRequest): Promise<Job> {
        return ok(await this.api.POST("/api/v1/jobs", { body: request }));
    }

    async getJob(id: string): Promise<Job> {
        return ok(await this.api.GET("/api/v1/jobs/{id}", { params: { path: { id } } }));
    }

    /** Looks at the job until it has ended; answers it (SUCCEEDED, FAILED or STOPPED). */
    async waitJob(id: string, options: WaitOptions = {}): Promise<Job> {
        const deadline = Date.now() + (options.timeoutMs ?? 60_000);
        for (;;) {
            const job = await this.getJob(id);
            if (TERMINAL_JOB_STATES.includes(job.state)) {
                return job;
            }
            if (Date.now() >= deadline) {
                throw new PrismTimeoutError(`job ${id} is still ${job.state}`);
            }
            await sleep(options.intervalMs ?? 200);
        }
    }

    /**
     * The job's log as it is written, in chunks of text, until the job has
     * ended and its log is drained. Stop early with `signal` or by breaking
     * out of the loop.
     */
    async *followLogs(id: string, signal?: AbortSignal): AsyncGenerator<string, void, undefined> {
        const r = await this.api.GET("/api/v1/jobs/{id}/logs", {
            params: { path: { id }, query: { follow: true } },
            parseAs: "stream",
            ...(signal ? { signal } : {}),
        });
        if (r.error !== undefined || !r.data) {
            fail(r.response, r.error);
        }
        const decoder = new TextDecoder();
        const reader = r.data.getReader();
        try {
            for (;;) {
                const { done, value } = await reader.read();
                if (done) {
                    break;
                }
                const text = decoder.decode(value, { stream: true });
                if (text) {
                    yield text;
                }
            }
            const rest = decoder.decode();
            if (rest) {
                yield rest;
            }
        } finally {
            reader.releaseLock();
            await r.data.cancel().catch(() => undefined);
        }
    }

    /** The job's whole log so far (at most 64 MiB). */
    async jobLogs(id: string): Promise<string> {
        return ok(
            await this.api.GET("/api/v1/jobs/{id}/logs", {
                params: { path: { id } },
                parseAs: "text",
            }),
        );
    }

    // ---- tasks and objects

    /** Submits a task owned by the GCS; answers its objects' IDs. */
    async submitTask(request: TaskSubmit): Promise<TaskSubmitted> {
        return ok(await this.api.POST("/api/v1/tasks", { body: request }));
    }

    /**
     * The object once it is READY or FAILED (a FAILED object has `error`).
     * Each request waits on the GCS up to 10 s, so a long wait costs few
     * requests.
     */
    async getObject(id: string, options: WaitOptions = {}): Promise<ObjectValue> {
        const deadline = Date.now() + (options.timeoutMs ?? 60_000);
        for (;;) {
            const left = Math.max(0, Math.min(10_000, deadline - Date.now()));
            const r = await this.api.GET("/api/v1/objects/{id}", {
                params: { path: { id }, query: { timeout_ms: left } },
            });
            const object = ok(r);
            if (typeof object === "string") {
                /* only with format=raw, which this does not ask for */
                throw new PrismError(r.response.status, "unexpected", "a raw value");
            }
            if (r.response.status === 200) {
                return object;
            }
            if (Date.now() >= deadline) {
                throw new PrismTimeoutError(`object ${id} is still ${object.state}`);
            }
        }
    }

    // ---- actors

    /** One page of actors (newest first), filtered as the query says. */
    async listActors(
        query: NonNullable<paths["/api/v1/actors"]["get"]["parameters"]["query"]> = {},
    ): Promise<ActorList> {
        return ok(await this.api.GET("/api/v1/actors", { params: { query } }));
    }

    /** Kills an actor; with `noRestart` false it may restart (its max_restarts). */
    async killActor(id: string, options: { noRestart?: boolean } = {}): Promise<Actor> {
        return ok(
            await this.api.POST("/api/v1/actors/{id}/kill", {
                params: { path: { id } },
                body: { no_restart: options.noRestart ?? true },
            }),
        );
    }

    // ---- datasets

    /** Starts a dataset pipeline from its plan (docs/datasets.md). */
    async createDataset(plan: Plan): Promise<Dataset> {
        return ok(await this.api.POST("/api/v1/datasets", { body: plan }));
    }

    async getDataset(id: string): Promise<Dataset> {
        return ok(await this.api.GET("/api/v1/datasets/{id}", { params: { path: { id } } }));
    }

    /**
     * The first `limit` rows of the dataset's output (take), waiting up to
     * `timeoutMs` on the GCS for them or for the dataset to end.
     */
    async takeRows(id: string, limit: number, timeoutMs = 30_000): Promise<TakenRows> {
        return ok(
            await this.api.GET("/api/v1/datasets/{id}/rows", {
                params: { path: { id }, query: { limit, timeout_ms: timeoutMs } },
            }),
        );
    }
}

/**
 * A client from the environment a job's driver gets (PRISM_ADDRESS,
 * PRISM_TOKEN), as `prism up` prints them.
 */
export function fromEnv(env: Record<string, string | undefined> = process.env): Prism {
    const address = env["PRISM_ADDRESS"];
    const token = env["PRISM_TOKEN"];
    if (!address || !token) {
        throw new Error("PRISM_ADDRESS and PRISM_TOKEN must be set (see `prism up`)");
    }
    return new Prism({ address, token });
}
