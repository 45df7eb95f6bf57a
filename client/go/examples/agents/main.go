// Command agents is a smoke test of the generated Go client: it creates an agent (get-or-create),
// lists agents, then runs one turn on a Run stream and prints the answer as it streams.
//
//	ORCHESTRATOR_ADDRESS=127.0.0.1:50051 go run ./examples/agents
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	orchestratorv1 "github.com/agent-orchestrator/agent-orchestrator/client/go/orchestrator/v1"
)

const agentID = "go_example_agent"

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	address := os.Getenv("ORCHESTRATOR_ADDRESS")
	if address == "" {
		address = "127.0.0.1:50051"
	}
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	defer conn.Close()
	client := orchestratorv1.NewOrchestratorServiceClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Resources belong to the tenant named by x-tenant-id ("default" when absent). With
	// authentication on, every call carries a bearer credential (an API key or a JWT):
	// per call, in the outgoing metadata, so one connection can serve several callers.
	ctx = metadata.AppendToOutgoingContext(ctx, "x-tenant-id", "default")
	if token := os.Getenv("ORCHESTRATOR_TOKEN"); token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}

	created, err := client.CreateAgent(ctx, &orchestratorv1.CreateAgentRequest{
		Agent: &orchestratorv1.Agent{
			AgentId:       agentID,
			SystemMessage: "You are a concise assistant.",
			Description:   "Created by the Go client example.",
		},
		IfNotExists: true,
	})
	if err != nil {
		return fmt.Errorf("CreateAgent: %w", err)
	}
	fmt.Printf("agent %s (created: %t)\n", created.GetAgent().GetAgentId(), created.GetCreated())

	listed, err := client.ListAgents(ctx, &orchestratorv1.ListAgentsRequest{PageSize: 10})
	if err != nil {
		return fmt.Errorf("ListAgents: %w", err)
	}
	for _, agent := range listed.GetAgents() {
		fmt.Printf("- %s: %s\n", agent.GetAgentId(), agent.GetDescription())
	}

	stream, err := client.Run(ctx)
	if err != nil {
		return fmt.Errorf("Run: %w", err)
	}
	err = stream.Send(&orchestratorv1.RunRequest{
		Kind: &orchestratorv1.RunRequest_Start{Start: &orchestratorv1.StartTurn{
			AgentId: agentID,
			Message: "Say hello in five words.",
		}},
	})
	if err != nil {
		return fmt.Errorf("send StartTurn: %w", err)
	}
	// One turn: half-close, so the server ends the stream after it.
	if err := stream.CloseSend(); err != nil {
		return fmt.Errorf("close send: %w", err)
	}
	for {
		event, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("Run stream: %w", err)
		}
		switch e := event.GetEvent().(type) {
		case *orchestratorv1.RunEvent_RunStarted:
			fmt.Printf("run %s started (%s)\n", event.GetRunId(), e.RunStarted.GetStatus())
		case *orchestratorv1.RunEvent_TextDelta:
			fmt.Print(e.TextDelta.GetText())
		case *orchestratorv1.RunEvent_RunCompleted:
			fmt.Printf("\noutput: %s\n", e.RunCompleted.GetOutput())
		}
	}
}
