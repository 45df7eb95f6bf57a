// Runs the shared conformance scenario (conformance/scenario.json at the repository root;
// format in conformance/README.md) with the generated TypeScript client.
//
//   node dist/conformance/runner.js --address 127.0.0.1:50051 [--prefix ts] [--scenario PATH] [--step NAME]
//
// Prints `PASS step` / `FAIL step: why` per step and exits 1 when a step failed. The
// matching rules are the same as in the Python (conformance/scenario.py) and Go
// (client/go/conformance) runners.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

import {
  type CallOptions,
  type ClientUnaryCall,
  credentials,
  Metadata,
  type ServiceError,
  status as grpcStatus,
} from "@grpc/grpc-js";
import { BinaryReader } from "@bufbuild/protobuf/wire";

import {
  CancelRunRequest,
  CancelRunResponse,
  CreateAgentRequest,
  CreateAgentResponse,
  DeleteAgentRequest,
  DeleteAgentResponse,
  DeleteSessionRequest,
  DeleteSessionResponse,
  GetAgentRequest,
  GetAgentResponse,
  GetDefaultAgentRequest,
  GetDefaultAgentResponse,
  GetRunRequest,
  GetRunResponse,
  ListAgentsRequest,
  ListAgentsResponse,
  ListMessagesRequest,
  ListMessagesResponse,
  ListRunsRequest,
  ListRunsResponse,
  ListSessionsRequest,
  ListToolsRequest,
  ListToolsResponse,
  ListSessionsResponse,
  type MessageFns,
  OrchestratorServiceClient,
  SetDefaultAgentRequest,
  SetDefaultAgentResponse,
  UpdateAgentRequest,
  UpdateAgentResponse,
} from "../src/gen/orchestrator/v1/orchestrator_service";
import { RunEvent, RunRequest } from "../src/gen/orchestrator/v1/run";

const SCENARIO_FORMAT = 1;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

class StepFailed extends Error {}

/** How a call or stream ended. */
interface Outcome {
  code: string;
  reason: string;
  message: string;
}

const OK: Outcome = { code: "OK", reason: "", message: "" };

/** The ErrorInfo reason in a google.rpc.Status (grpc-status-details-bin), decoded by hand:
 * the generated client has no google.rpc types. Status: 3 = details (Any); Any: 1 =
 * type_url, 2 = value; ErrorInfo: 1 = reason. */
function errorInfoReason(statusBytes: Uint8Array): string {
  const fields = (bytes: Uint8Array, visit: (no: number, reader: BinaryReader, wireType: number) => boolean) => {
    const reader = new BinaryReader(bytes);
    while (reader.pos < reader.len) {
      const [no, wireType] = reader.tag();
      if (!visit(no, reader, wireType)) reader.skip(wireType);
    }
  };
  let reason = "";
  fields(statusBytes, (no, reader, wireType) => {
    if (no !== 3 || wireType !== 2) return false;
    let typeUrl = "";
    let value: Uint8Array = new Uint8Array();
    fields(reader.bytes(), (anyNo, anyReader, anyWire) => {
      if (anyWire !== 2) return false;
      if (anyNo === 1) typeUrl = anyReader.string();
      else if (anyNo === 2) value = anyReader.bytes();
      else return false;
      return true;
    });
    if (typeUrl.endsWith("/google.rpc.ErrorInfo")) {
      fields(value, (infoNo, infoReader, infoWire) => {
        if (infoNo !== 1 || infoWire !== 2) return false;
        reason = infoReader.string();
        return true;
      });
    }
    return true;
  });
  return reason;
}

function outcomeOf(error: ServiceError): Outcome {
  const details = error.metadata?.get("grpc-status-details-bin") ?? [];
  const raw = details[0];
  const reason = raw instanceof Uint8Array ? errorInfoReason(raw) : "";
  return { code: grpcStatus[error.code] ?? "UNKNOWN", reason, message: error.details };
}

function checkOutcome(got: Outcome, expect: JsonObject): void {
  const wantCode = typeof expect["code"] === "string" ? expect["code"] : "OK";
  const wantReason = typeof expect["reason"] === "string" ? expect["reason"] : "";
  if (got.code !== wantCode || (wantReason !== "" && got.reason !== wantReason)) {
    const want = wantCode + (wantReason ? `/${wantReason}` : "");
    throw new StepFailed(`status ${got.code}/${got.reason || "-"} (${got.message}), want ${want}`);
  }
}

// ---- JSON values: substitution, lookup, matching ----

class MissingVariable extends Error {}

function substitute(value: Json, vars: Record<string, string>): Json {
  if (typeof value === "string") {
    return value.replace(/\{\{([A-Za-z0-9_.]+)\}\}/g, (_, name: string) => {
      const found = vars[name];
      if (found === undefined) throw new MissingVariable(`unknown variable ${name}`);
      return found;
    });
  }
  if (Array.isArray(value)) return value.map((item) => substitute(item, vars));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, vars)]));
  }
  return value;
}

const ABSENT = Symbol("absent");
type Found = Json | typeof ABSENT;

function lookup(doc: Json, path: string): Found {
  let current: Json = doc;
  for (const segment of path.split(".")) {
    if (Array.isArray(current) && /^\d+$/.test(segment) && Number(segment) < current.length) {
      current = current[Number(segment)] as Json;
    } else if (current !== null && typeof current === "object" && !Array.isArray(current) && segment in current) {
      current = current[segment] as Json;
    } else {
      return ABSENT;
    }
  }
  return current;
}

function isZero(value: Found | undefined): boolean {
  if (value === ABSENT || value === undefined || value === null) return true;
  if (value === false || value === 0 || value === "") return true;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === "object") return Object.keys(value).length === 0;
  return false;
}

/** proto3-JSON equality: absent equals the zero value; int64 strings equal numbers. */
function equal(actual: Found | undefined, expected: Found | undefined): boolean {
  if (actual === ABSENT || actual === undefined || actual === null) return isZero(expected);
  if (expected === ABSENT || expected === undefined) return isZero(actual);
  if (typeof expected === "boolean" || typeof actual === "boolean") return actual === expected;
  if (typeof expected === "number") {
    return (typeof actual === "number" || typeof actual === "string") && Number(actual) === expected;
  }
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && actual.length === expected.length && expected.every((e, i) => equal(actual[i], e));
  }
  if (expected !== null && typeof expected === "object") {
    if (actual === null || typeof actual !== "object" || Array.isArray(actual)) return false;
    const keys = new Set([...Object.keys(expected), ...Object.keys(actual)]);
    return [...keys].every((k) => equal(actual[k], expected[k]));
  }
  return actual === expected;
}

function show(value: Found): string {
  return value === ABSENT ? "<absent>" : JSON.stringify(value);
}

function check(doc: Json, fields: JsonObject): void {
  for (const [path, expected] of Object.entries(fields)) {
    const actual = lookup(doc, path);
    if (expected !== null && typeof expected === "object" && !Array.isArray(expected)) {
      const entries = Object.entries(expected);
      const first = entries[0];
      if (entries.length === 1 && first && first[0].startsWith("$")) {
        const [op, arg] = first;
        let ok: boolean;
        if (op === "$nonempty") ok = isZero(actual) !== (arg === true);
        else if (op === "$ne") ok = !equal(actual, arg);
        else if (op === "$len") {
          const items = actual === ABSENT ? [] : actual;
          ok = Array.isArray(items) && items.length === arg;
        } else throw new StepFailed(`unknown matcher ${op}`);
        if (!ok) throw new StepFailed(`${path}: ${show(actual)} does not satisfy ${JSON.stringify(expected)}`);
        continue;
      }
    }
    if (!equal(actual, expected)) {
      throw new StepFailed(`${path}: got ${show(actual)}, want ${JSON.stringify(expected)}`);
    }
  }
}

function capture(doc: Json, wanted: Json | undefined, vars: Record<string, string>): void {
  for (const [name, path] of Object.entries(asObject(wanted))) {
    const value = lookup(doc, String(path));
    if (value === ABSENT) throw new StepFailed(`capture ${name}: ${String(path)} is absent`);
    vars[name] = typeof value === "string" ? value : JSON.stringify(value);
  }
}

function asObject(value: Json | undefined): JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? value : {};
}

// ---- calls through the generated client ----

type Callback<T> = (error: ServiceError | null, response: T) => void;
type UnaryMethod<Req, Resp> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: Callback<Resp>,
) => ClientUnaryCall;
type UnaryFn = (request: Json, metadata: Metadata, deadline: Date) => Promise<{ outcome: Outcome; body: Json }>;

function bind<Req, Resp>(requestFns: MessageFns<Req>, responseFns: MessageFns<Resp>, method: UnaryMethod<Req, Resp>): UnaryFn {
  return (request, metadata, deadline) =>
    new Promise((resolve) => {
      method(requestFns.fromJSON(request), metadata, { deadline }, (error, response) => {
        if (error) resolve({ outcome: outcomeOf(error), body: {} });
        else resolve({ outcome: OK, body: responseFns.toJSON(response) as Json });
      });
    });
}

function unaryMethods(c: OrchestratorServiceClient): Record<string, UnaryFn> {
  return {
    CreateAgent: bind(CreateAgentRequest, CreateAgentResponse, c.createAgent.bind(c)),
    GetAgent: bind(GetAgentRequest, GetAgentResponse, c.getAgent.bind(c)),
    ListAgents: bind(ListAgentsRequest, ListAgentsResponse, c.listAgents.bind(c)),
    UpdateAgent: bind(UpdateAgentRequest, UpdateAgentResponse, c.updateAgent.bind(c)),
    DeleteAgent: bind(DeleteAgentRequest, DeleteAgentResponse, c.deleteAgent.bind(c)),
    SetDefaultAgent: bind(SetDefaultAgentRequest, SetDefaultAgentResponse, c.setDefaultAgent.bind(c)),
    GetDefaultAgent: bind(GetDefaultAgentRequest, GetDefaultAgentResponse, c.getDefaultAgent.bind(c)),
    GetRun: bind(GetRunRequest, GetRunResponse, c.getRun.bind(c)),
    ListRuns: bind(ListRunsRequest, ListRunsResponse, c.listRuns.bind(c)),
    CancelRun: bind(CancelRunRequest, CancelRunResponse, c.cancelRun.bind(c)),
    ListSessions: bind(ListSessionsRequest, ListSessionsResponse, c.listSessions.bind(c)),
    ListMessages: bind(ListMessagesRequest, ListMessagesResponse, c.listMessages.bind(c)),
    DeleteSession: bind(DeleteSessionRequest, DeleteSessionResponse, c.deleteSession.bind(c)),
    ListTools: bind(ListToolsRequest, ListToolsResponse, c.listTools.bind(c)),
  };
}

/** A stream event (proto3 JSON) or, at the end, the stream's outcome. */
type Item = { event: JsonObject } | { end: Outcome };

/** One Run stream; events are queued as they arrive and read with a timeout. */
class RunStream {
  private readonly items: Item[] = [];
  private waiter: (() => void) | undefined;
  private ended = false;
  readonly call;

  constructor(client: OrchestratorServiceClient, metadata: Metadata, timeoutMs: number) {
    this.call = client.run(metadata, { deadline: new Date(Date.now() + 3 * timeoutMs) });
    this.call.on("data", (event: RunEvent) => this.push({ event: RunEvent.toJSON(event) as JsonObject }));
    this.call.on("error", (error: ServiceError) => this.push({ end: outcomeOf(error) }));
    this.call.on("status", (s: { code: number }) => {
      if (s.code === grpcStatus.OK) this.push({ end: OK });
    });
  }

  private push(item: Item): void {
    if (this.ended) return;
    if ("end" in item) this.ended = true;
    this.items.push(item);
    this.waiter?.();
  }

  async next(timeoutMs: number): Promise<Item> {
    const deadline = Date.now() + timeoutMs;
    while (this.items.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new StepFailed(`no event within ${timeoutMs / 1000} s`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.items.shift() as Item;
  }

  close(): void {
    this.ended = true;
    this.call.cancel();
  }
}

// ---- the engine ----

class Runner {
  private readonly unary: Record<string, UnaryFn>;
  private readonly timeoutMs: number;

  constructor(
    private readonly scenario: JsonObject,
    private readonly client: OrchestratorServiceClient,
    private readonly vars: Record<string, string>,
  ) {
    this.unary = unaryMethods(client);
    const seconds = scenario["timeout_seconds"];
    this.timeoutMs = typeof seconds === "number" ? seconds * 1000 : 20_000;
  }

  private metadata(): Metadata {
    const metadata = new Metadata();
    for (const [key, value] of Object.entries(asObject(substitute(this.scenario["metadata"] ?? {}, this.vars)))) {
      metadata.set(key, String(value));
    }
    return metadata;
  }

  async run(only: Set<string>): Promise<boolean> {
    let ok = true;
    const steps = Array.isArray(this.scenario["steps"]) ? this.scenario["steps"] : [];
    for (const s of steps) {
      const step = asObject(s);
      const name = String(step["name"]);
      if (only.size > 0 && !only.has(name)) continue;
      try {
        if ("script" in step) await this.script(step);
        else await this.unaryStep(step);
        console.log(`PASS ${name}`);
      } catch (error) {
        ok = false;
        const why = error instanceof StepFailed || error instanceof MissingVariable ? error.message : String(error);
        console.log(`FAIL ${name}: ${why}`);
      }
    }
    return ok;
  }

  private async unaryStep(step: JsonObject): Promise<void> {
    const rpc = String(step["rpc"]);
    const method = this.unary[rpc];
    if (!method) throw new StepFailed(`unknown RPC ${rpc}`);
    const expect = asObject(step["expect"]);
    const request = substitute(step["request"] ?? {}, this.vars);
    const { outcome, body } = await method(request, this.metadata(), new Date(Date.now() + this.timeoutMs));
    checkOutcome(outcome, expect);
    check(body, asObject(substitute(expect["fields"] ?? {}, this.vars)));
    capture(body, expect["capture"], this.vars);
  }

  private async script(step: JsonObject): Promise<void> {
    const script = Array.isArray(step["script"]) ? step["script"] : [];
    const streams = new Map<string, RunStream>();
    const texts = new Map<string, string>();
    try {
      for (const [index, a] of script.entries()) {
        const action = asObject(a);
        const name = typeof action["stream"] === "string" ? action["stream"] : "main";
        const where = `[${index}] ${name}`;
        let stream = streams.get(name);
        if (!stream) {
          stream = new RunStream(this.client, this.metadata(), this.timeoutMs);
          streams.set(name, stream);
          texts.set(name, "");
        }
        if ("send" in action) {
          const message = asObject(substitute(action["send"] ?? {}, this.vars));
          if ("start" in message) texts.set(name, "");
          stream.call.write(RunRequest.fromJSON(message));
        } else if (action["half_close"] === true) {
          stream.call.end();
        } else if ("expect_event" in action) {
          await this.expectEvent(stream, action, texts, name, where);
        } else if ("expect_end" in action) {
          for (;;) {
            const item = await stream.next(this.timeoutMs);
            if ("end" in item) {
              try {
                checkOutcome(item.end, asObject(action["expect_end"]));
              } catch (error) {
                throw new StepFailed(`${where}: ${(error as Error).message}`);
              }
              break;
            }
            const text = lookup(item.event, "textDelta.text");
            if (typeof text === "string") texts.set(name, (texts.get(name) ?? "") + text);
          }
        } else {
          throw new StepFailed(`${where}: unknown action ${JSON.stringify(Object.keys(action))}`);
        }
      }
    } finally {
      for (const stream of streams.values()) stream.close();
    }
  }

  private async expectEvent(stream: RunStream, action: JsonObject, texts: Map<string, string>, name: string, where: string) {
    const kind = String(action["expect_event"]);
    const forbid = Array.isArray(action["forbid"]) ? action["forbid"].map(String) : [];
    let event: JsonObject | undefined;
    while (!event) {
      const item = await stream.next(this.timeoutMs);
      if ("end" in item) {
        const e = item.end;
        throw new StepFailed(`${where}: stream ended (${e.code}/${e.reason} ${e.message}) before ${kind}`);
      }
      const text = lookup(item.event, "textDelta.text");
      if (typeof text === "string") texts.set(name, (texts.get(name) ?? "") + text);
      const bad = forbid.find((f) => f in item.event);
      if (bad) throw new StepFailed(`${where}: got ${bad} while waiting for ${kind}`);
      if (kind in item.event) event = item.event;
    }
    const text = texts.get(name) ?? "";
    const local = { ...this.vars, text };
    try {
      if ("text" in action) {
        const want = substitute(action["text"] ?? "", local);
        if (want !== text) throw new StepFailed(`text ${JSON.stringify(text)}, want ${JSON.stringify(want)}`);
      }
      check(event, asObject(substitute(action["fields"] ?? {}, local)));
      capture(event, action["capture"], this.vars);
    } catch (error) {
      throw new StepFailed(`${where} ${kind}: ${(error as Error).message}`);
    }
  }
}

function defaultScenario(): string {
  // dist/conformance -> client/ts -> repository root (or wherever conformance/ is above).
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const candidate = join(dir, "conformance", "scenario.json");
    if (existsSync(candidate)) return candidate;
  }
  return "conformance/scenario.json";
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  let address = "127.0.0.1:50051";
  let prefix = "ts";
  let scenarioPath = defaultScenario();
  const only = new Set<string>();
  for (let i = 0; i < args.length; i += 2) {
    const value = args[i + 1] ?? "";
    switch (args[i]) {
      case "--address":
        address = value;
        break;
      case "--prefix":
        prefix = value;
        break;
      case "--scenario":
        scenarioPath = value;
        break;
      case "--step":
        only.add(value);
        break;
      default:
        console.error(`unknown argument ${args[i]}`);
        return 2;
    }
  }
  const scenario = JSON.parse(readFileSync(scenarioPath, "utf8")) as JsonObject;
  if (scenario["format"] !== SCENARIO_FORMAT) {
    console.error(`${scenarioPath}: format ${String(scenario["format"])}, this runner knows ${SCENARIO_FORMAT}`);
    return 2;
  }
  // Several replicas (a comma-separated list): the calls go to each in turn.
  const client = address.includes(",")
    ? new OrchestratorServiceClient(`ipv4:${address}`, credentials.createInsecure(), {
        "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
      })
    : new OrchestratorServiceClient(address, credentials.createInsecure());
  try {
    // The API key of the runner's tenant (empty against a server without authentication).
    const token = process.env["ORCHESTRATOR_TOKEN"] ?? "";
    return (await new Runner(scenario, client, { prefix, token }).run(only)) ? 0 : 1;
  } finally {
    client.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 2;
  },
);
