// Command follow shows resumable runs from Go: it starts a turn that goes on when its
// stream goes away (DISCONNECT_POLICY_CONTINUE), reads its first events, drops the
// stream, then follows the run from the last sequence number it saw (FollowRun), as a
// client does after a dropped connection or from another process. Every event arrives
// once: what it printed before the drop and after it add up to the run's output.
//
//	ORCHESTRATOR_ADDRESS=127.0.0.1:50051 go run ./examples/follow
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

const agentID = "go_follow_agent"

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
	ctx = metadata.AppendToOutgoingContext(ctx, "x-tenant-id", "default")
	if token := os.Getenv("ORCHESTRATOR_TOKEN"); token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	if _, err := client.CreateAgent(ctx, &orchestratorv1.CreateAgentRequest{
		Agent: &orchestratorv1.Agent{AgentId: agentID}, IfNotExists: true,
	}); err != nil {
		return fmt.Errorf("CreateAgent: %w", err)
	}

	runID, last, before, err := startAndDrop(ctx, client)
	if err != nil {
		return err
	}
	fmt.Printf("run %s: dropped the stream after sequence %d\n", runID, last)
	fmt.Printf("before: %s\n", before)
	after, output, err := follow(ctx, client, runID, last)
	if err != nil {
		return err
	}
	fmt.Printf("after: %s\noutput: %s\n", after, output)
	return nil
}

// startAndDrop starts a detached turn, reads its first two events, and drops the stream.
func startAndDrop(
	ctx context.Context, client orchestratorv1.OrchestratorServiceClient,
) (runID string, last int64, text string, err error) {
	streamCtx, drop := context.WithCancel(ctx)
	defer drop() // the run goes on: DISCONNECT_POLICY_CONTINUE
	stream, err := client.Run(streamCtx)
	if err != nil {
		return "", 0, "", fmt.Errorf("Run: %w", err)
	}
	if err := stream.Send(&orchestratorv1.RunRequest{
		Kind: &orchestratorv1.RunRequest_Start{Start: &orchestratorv1.StartTurn{
			AgentId:      agentID,
			Message:      "Tell me a short story.",
			OnDisconnect: orchestratorv1.DisconnectPolicy_DISCONNECT_POLICY_CONTINUE,
		}},
	}); err != nil {
		return "", 0, "", fmt.Errorf("send StartTurn: %w", err)
	}
	for i := 0; i < 2; i++ {
		event, err := stream.Recv()
		if err != nil {
			return "", 0, "", fmt.Errorf("Run stream: %w", err)
		}
		runID, last = event.GetRunId(), event.GetSequence()
		text += event.GetTextDelta().GetText()
	}
	return runID, last, text, nil
}

// follow streams the run's events after sequence `after` until the run ends.
func follow(
	ctx context.Context, client orchestratorv1.OrchestratorServiceClient, runID string, after int64,
) (text, output string, err error) {
	stream, err := client.FollowRun(ctx)
	if err != nil {
		return "", "", fmt.Errorf("FollowRun: %w", err)
	}
	if err := stream.Send(&orchestratorv1.FollowRunRequest{
		Kind: &orchestratorv1.FollowRunRequest_Start{
			Start: &orchestratorv1.FollowStart{RunId: runID, AfterSequence: after},
		},
	}); err != nil {
		return "", "", fmt.Errorf("send FollowStart: %w", err)
	}
	// Nothing more to send (no client tools): half-close; the events keep coming.
	if err := stream.CloseSend(); err != nil {
		return "", "", fmt.Errorf("close send: %w", err)
	}
	for {
		event, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return text, output, nil
		}
		if err != nil {
			return "", "", fmt.Errorf("FollowRun stream: %w", err)
		}
		switch e := event.GetEvent().(type) {
		case *orchestratorv1.RunEvent_TextDelta:
			text += e.TextDelta.GetText()
		case *orchestratorv1.RunEvent_RunCompleted:
			output = e.RunCompleted.GetOutput()
		}
	}
}
