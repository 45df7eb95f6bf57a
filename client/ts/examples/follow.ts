// Resumable runs from TypeScript: starts a turn that goes on when its stream goes away
// (DISCONNECT_POLICY_CONTINUE), reads its first events, drops the stream, then follows
// the run from the last sequence number it saw (FollowRun), as a client does after a
// dropped connection or from another process. What it printed before the drop and after
// it add up to the run's output.
//
//   npm run build && ORCHESTRATOR_ADDRESS=127.0.0.1:50051 node dist/examples/follow.js
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";

import {
  CreateAgentRequest,
  type CreateAgentResponse,
  FollowRunRequest,
  OrchestratorServiceClient,
} from "../src/gen/orchestrator/v1/orchestrator_service";
import { DisconnectPolicy, RunRequest, type RunEvent } from "../src/gen/orchestrator/v1/run";

const AGENT_ID = "ts_follow_agent";

function unary<T>(call: (callback: (error: ServiceError | null, response: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    call((error, response) => (error ? reject(error) : resolve(response)));
  });
}

async function main(): Promise<void> {
  const address = process.env["ORCHESTRATOR_ADDRESS"] ?? "127.0.0.1:50051";
  const client = new OrchestratorServiceClient(address, credentials.createInsecure());
  const metadata = new Metadata();
  metadata.set("x-tenant-id", "default");
  const token = process.env["ORCHESTRATOR_TOKEN"];
  if (token) metadata.set("authorization", `Bearer ${token}`);
  const deadline = () => ({ deadline: Date.now() + 120_000 });
  try {
    await unary<CreateAgentResponse>((cb) =>
      client.createAgent(
        CreateAgentRequest.fromPartial({ agent: { agentId: AGENT_ID }, ifNotExists: true }),
        metadata,
        deadline(),
        cb,
      ),
    );

    // Start a detached turn, read its first two events, drop the stream.
    const run = client.run(metadata, deadline());
    run.on("error", () => undefined); // the drop below ends the call with CANCELLED
    run.write(
      RunRequest.fromPartial({
        kind: {
          $case: "start",
          start: {
            agentId: AGENT_ID,
            message: "Tell me a short story.",
            onDisconnect: DisconnectPolicy.DISCONNECT_POLICY_CONTINUE,
          },
        },
      }),
    );
    let runId = "";
    let last = 0;
    let before = "";
    for await (const item of run) {
      const event = item as RunEvent;
      runId = event.runId;
      last = Number(event.sequence);
      if (event.event?.$case === "textDelta") before += event.event.textDelta.text;
      if (last >= 2) break;
    }
    run.cancel(); // the run goes on: DISCONNECT_POLICY_CONTINUE
    console.log(`run ${runId}: dropped the stream after sequence ${last}`);
    console.log(`before: ${before}`);

    // Follow it from where the dropped stream stopped.
    const follow = client.followRun(metadata, deadline());
    follow.write(
      FollowRunRequest.fromPartial({
        kind: { $case: "start", start: { runId, afterSequence: last } },
      }),
    );
    follow.end(); // nothing more to send (no client tools); the events keep coming
    let after = "";
    let output = "";
    for await (const item of follow) {
      const event = item as RunEvent;
      if (event.event?.$case === "textDelta") after += event.event.textDelta.text;
      if (event.event?.$case === "runCompleted") output = event.event.runCompleted.output;
    }
    console.log(`after: ${after}`);
    console.log(`output: ${output}`);
  } finally {
    client.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
