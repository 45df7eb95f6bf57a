// Smoke test of the generated TypeScript client: creates an agent (get-or-create), lists
// agents, then runs one turn on a Run stream and prints the answer as it streams.
//
//   npm run build && ORCHESTRATOR_ADDRESS=127.0.0.1:50051 node dist/examples/agents.js
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";

import {
  CreateAgentRequest,
  type CreateAgentResponse,
  ListAgentsRequest,
  type ListAgentsResponse,
  OrchestratorServiceClient,
} from "../src/gen/orchestrator/v1/orchestrator_service";
import { RunRequest, type RunEvent, RunStatus } from "../src/gen/orchestrator/v1/run";

const AGENT_ID = "ts_example_agent";

/** Adapts a grpc-js unary callback to a promise. */
function unary<T>(call: (callback: (error: ServiceError | null, response: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    call((error, response) => (error ? reject(error) : resolve(response)));
  });
}

async function main(): Promise<void> {
  const address = process.env["ORCHESTRATOR_ADDRESS"] ?? "127.0.0.1:50051";
  const client = new OrchestratorServiceClient(address, credentials.createInsecure());
  // Resources belong to the tenant named by x-tenant-id ("default" when absent). With
  // authentication on, every call carries a bearer credential (an API key or a JWT): per
  // call, in its metadata, so one client can serve several callers.
  const metadata = new Metadata();
  metadata.set("x-tenant-id", "default");
  const token = process.env["ORCHESTRATOR_TOKEN"];
  if (token) metadata.set("authorization", `Bearer ${token}`);
  const deadline = () => ({ deadline: Date.now() + 120_000 });

  try {
    const created = await unary<CreateAgentResponse>((cb) =>
      client.createAgent(
        // fromPartial fills the fields left out with their defaults.
        CreateAgentRequest.fromPartial({
          agent: {
            agentId: AGENT_ID,
            systemMessage: "You are a concise assistant.",
            description: "Created by the TypeScript client example.",
          },
          ifNotExists: true,
        }),
        metadata,
        deadline(),
        cb,
      ),
    );
    console.log(`agent ${created.agent?.agentId} (created: ${created.created})`);

    const listed = await unary<ListAgentsResponse>((cb) =>
      client.listAgents(ListAgentsRequest.fromPartial({ pageSize: 10 }), metadata, deadline(), cb),
    );
    for (const agent of listed.agents) {
      console.log(`- ${agent.agentId}: ${agent.description}`);
    }

    const stream = client.run(metadata, deadline());
    stream.write(
      RunRequest.fromPartial({
        kind: { $case: "start", start: { agentId: AGENT_ID, message: "Say hello in five words." } },
      }),
    );
    // One turn: half-close, so the server ends the stream after it.
    stream.end();
    for await (const item of stream) {
      const event = item as RunEvent;
      switch (event.event?.$case) {
        case "runStarted":
          console.log(`run ${event.runId} started (${RunStatus[event.event.runStarted.status]})`);
          break;
        case "textDelta":
          process.stdout.write(event.event.textDelta.text);
          break;
        case "runCompleted":
          console.log(`\noutput: ${event.event.runCompleted.output}`);
          break;
        default:
          break;
      }
    }
  } finally {
    client.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
