// Command conformance runs the shared conformance scenario (conformance/scenario.json at the
// repository root; format in conformance/README.md) with the generated Go client.
//
//	go run ./conformance -address 127.0.0.1:50051 [-prefix go] [-scenario PATH] [-step NAME]
//
// It prints `PASS step` / `FAIL step: why` per step and exits 1 when a step failed. The
// matching rules are the same as in the Python (conformance/scenario.py) and TypeScript
// (client/ts/conformance/runner.ts) runners.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/agent-orchestrator/agent-orchestrator/client/go/orchestrator/v1"
)

const scenarioFormat = 1

// codeNames are the canonical gRPC status code names, by number.
var codeNames = []string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

type failure struct{ msg string }

func (f failure) Error() string { return f.msg }

func failf(format string, args ...any) error { return failure{fmt.Sprintf(format, args...)} }

// outcome is how a call or stream ended.
type outcome struct {
	code, reason, message string
}

func outcomeOf(err error) outcome {
	if err == nil {
		return outcome{code: "OK"}
	}
	st := status.Convert(err)
	out := outcome{code: "UNKNOWN", message: st.Message()}
	if c := int(st.Code()); c >= 0 && c < len(codeNames) {
		out.code = codeNames[c]
	}
	for _, detail := range st.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			out.reason = info.GetReason()
		}
	}
	return out
}

func checkOutcome(got outcome, expect map[string]any) error {
	wantCode, _ := expect["code"].(string)
	if wantCode == "" {
		wantCode = "OK"
	}
	wantReason, _ := expect["reason"].(string)
	if got.code != wantCode || (wantReason != "" && got.reason != wantReason) {
		want := wantCode
		if wantReason != "" {
			want += "/" + wantReason
		}
		reason := got.reason
		if reason == "" {
			reason = "-"
		}
		return failf("status %s/%s (%s), want %s", got.code, reason, got.message, want)
	}
	return nil
}

// ---- JSON values: substitution, lookup, matching ----

var varPattern = regexp.MustCompile(`\{\{([A-Za-z0-9_.]+)\}\}`)

type missingVar struct{ name string }

func (m missingVar) Error() string { return "unknown variable " + m.name }

func substitute(value any, vars map[string]string) (any, error) {
	switch v := value.(type) {
	case string:
		var missing error
		out := varPattern.ReplaceAllStringFunc(v, func(m string) string {
			name := varPattern.FindStringSubmatch(m)[1]
			val, ok := vars[name]
			if !ok && missing == nil {
				missing = missingVar{name}
			}
			return val
		})
		return out, missing
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			s, err := substitute(item, vars)
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, item := range v {
			s, err := substitute(item, vars)
			if err != nil {
				return nil, err
			}
			out[k] = s
		}
		return out, nil
	}
	return value, nil
}

type absentT struct{}

var absent = absentT{}

func lookup(doc any, path string) any {
	current := doc
	for _, segment := range strings.Split(path, ".") {
		switch c := current.(type) {
		case map[string]any:
			next, ok := c[segment]
			if !ok {
				return absent
			}
			current = next
		case []any:
			i, err := strconv.Atoi(segment)
			if err != nil || i < 0 || i >= len(c) {
				return absent
			}
			current = c[i]
		default:
			return absent
		}
	}
	return current
}

func isZero(v any) bool {
	switch x := v.(type) {
	case absentT, nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// equal is proto3-JSON equality: absent equals the zero value; int64 strings equal numbers.
func equal(actual, expected any) bool {
	if _, ok := actual.(absentT); ok || actual == nil {
		return isZero(expected)
	}
	if _, ok := expected.(absentT); ok {
		return isZero(actual)
	}
	switch e := expected.(type) {
	case bool:
		a, ok := actual.(bool)
		return ok && a == e
	case float64:
		switch a := actual.(type) {
		case float64:
			return a == e
		case string:
			f, err := strconv.ParseFloat(a, 64)
			return err == nil && f == e
		}
		return false
	case string:
		a, ok := actual.(string)
		return ok && a == e
	case []any:
		a, ok := actual.([]any)
		if !ok || len(a) != len(e) {
			return false
		}
		for i := range e {
			if !equal(a[i], e[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		a, ok := actual.(map[string]any)
		if !ok {
			return false
		}
		for k, ev := range e {
			av, present := a[k]
			if !present {
				av = absent
			}
			if !equal(av, ev) {
				return false
			}
		}
		for k, av := range a {
			if _, present := e[k]; !present && !isZero(av) {
				return false
			}
		}
		return true
	}
	return false
}

func show(v any) string {
	if _, ok := v.(absentT); ok {
		return "<absent>"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func check(doc any, fields map[string]any) error {
	for path, expected := range fields {
		actual := lookup(doc, path)
		if m, ok := expected.(map[string]any); ok && len(m) == 1 {
			var op string
			var arg any
			for op, arg = range m {
			}
			if strings.HasPrefix(op, "$") {
				var ok bool
				switch op {
				case "$nonempty":
					ok = isZero(actual) != (arg == true)
				case "$ne":
					ok = !equal(actual, arg)
				case "$len":
					items, isList := actual.([]any)
					if _, isAbsent := actual.(absentT); isAbsent {
						items, isList = []any{}, true
					}
					n, _ := arg.(float64)
					ok = isList && float64(len(items)) == n
				default:
					return failf("unknown matcher %s", op)
				}
				if !ok {
					return failf("%s: %s does not satisfy %s", path, show(actual), show(expected))
				}
				continue
			}
		}
		if !equal(actual, expected) {
			return failf("%s: got %s, want %s", path, show(actual), show(expected))
		}
	}
	return nil
}

func capture(doc any, wanted map[string]any, vars map[string]string) error {
	for name, p := range wanted {
		path, _ := p.(string)
		value := lookup(doc, path)
		if _, ok := value.(absentT); ok {
			return failf("capture %s: %s is absent", name, path)
		}
		if s, ok := value.(string); ok {
			vars[name] = s
		} else {
			vars[name] = show(value)
		}
	}
	return nil
}

func toJSON(m proto.Message) (map[string]any, error) {
	raw, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	return out, json.Unmarshal(raw, &out)
}

func fromJSON(value any, m proto.Message) error {
	raw, err := json.Marshal(value)
	if err != nil {
		return err
	}
	if err := protojson.Unmarshal(raw, m); err != nil {
		return failf("request does not parse as %s: %v", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}

// ---- calls through the generated client ----

type unaryFn func(ctx context.Context, request any) (proto.Message, error)

func bind[Req, Resp proto.Message](newRequest func() Req, method func(context.Context, Req, ...grpc.CallOption) (Resp, error)) unaryFn {
	return func(ctx context.Context, request any) (proto.Message, error) {
		req := newRequest()
		if err := fromJSON(request, req); err != nil {
			return nil, err
		}
		resp, err := method(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp, nil
	}
}

func unaryMethods(c pb.OrchestratorServiceClient) map[string]unaryFn {
	return map[string]unaryFn{
		"CreateAgent":     bind(func() *pb.CreateAgentRequest { return &pb.CreateAgentRequest{} }, c.CreateAgent),
		"GetAgent":        bind(func() *pb.GetAgentRequest { return &pb.GetAgentRequest{} }, c.GetAgent),
		"ListAgents":      bind(func() *pb.ListAgentsRequest { return &pb.ListAgentsRequest{} }, c.ListAgents),
		"UpdateAgent":     bind(func() *pb.UpdateAgentRequest { return &pb.UpdateAgentRequest{} }, c.UpdateAgent),
		"DeleteAgent":     bind(func() *pb.DeleteAgentRequest { return &pb.DeleteAgentRequest{} }, c.DeleteAgent),
		"SetDefaultAgent": bind(func() *pb.SetDefaultAgentRequest { return &pb.SetDefaultAgentRequest{} }, c.SetDefaultAgent),
		"GetDefaultAgent": bind(func() *pb.GetDefaultAgentRequest { return &pb.GetDefaultAgentRequest{} }, c.GetDefaultAgent),
		"GetRun":          bind(func() *pb.GetRunRequest { return &pb.GetRunRequest{} }, c.GetRun),
		"ListRuns":        bind(func() *pb.ListRunsRequest { return &pb.ListRunsRequest{} }, c.ListRuns),
		"CancelRun":       bind(func() *pb.CancelRunRequest { return &pb.CancelRunRequest{} }, c.CancelRun),
		"ListSessions":    bind(func() *pb.ListSessionsRequest { return &pb.ListSessionsRequest{} }, c.ListSessions),
		"ListMessages":    bind(func() *pb.ListMessagesRequest { return &pb.ListMessagesRequest{} }, c.ListMessages),
		"DeleteSession":   bind(func() *pb.DeleteSessionRequest { return &pb.DeleteSessionRequest{} }, c.DeleteSession),
		"ListTools":       bind(func() *pb.ListToolsRequest { return &pb.ListToolsRequest{} }, c.ListTools),
	}
}

// item is a stream event (as proto3 JSON) or, at the end, the stream's outcome.
type item struct {
	event map[string]any
	end   *outcome
}

type runStream struct {
	stream pb.OrchestratorService_RunClient
	cancel context.CancelFunc
	items  chan item
}

func openStream(ctx context.Context, c pb.OrchestratorServiceClient, timeout time.Duration) (*runStream, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*timeout)
	stream, err := c.Run(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &runStream{stream: stream, cancel: cancel, items: make(chan item, 1024)}
	go func() {
		for {
			event, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				s.items <- item{end: &outcome{code: "OK"}}
				return
			}
			if err != nil {
				o := outcomeOf(err)
				s.items <- item{end: &o}
				return
			}
			doc, err := toJSON(event)
			if err != nil {
				s.items <- item{end: &outcome{code: "UNKNOWN", message: err.Error()}}
				return
			}
			s.items <- item{event: doc}
		}
	}()
	return s, nil
}

func (s *runStream) next(timeout time.Duration) (item, error) {
	select {
	case it := <-s.items:
		return it, nil
	case <-time.After(timeout):
		return item{}, failf("no event within %s", timeout)
	}
}

// ---- the engine ----

type runner struct {
	scenario map[string]any
	client   pb.OrchestratorServiceClient
	unary    map[string]unaryFn
	vars     map[string]string
	timeout  time.Duration
}

func (r *runner) context() (context.Context, error) {
	md, err := substitute(r.scenario["metadata"], r.vars)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if m, ok := md.(map[string]any); ok {
		for k, v := range m {
			ctx = metadata.AppendToOutgoingContext(ctx, k, fmt.Sprint(v))
		}
	}
	return ctx, nil
}

func (r *runner) runUnary(step map[string]any) error {
	rpc, _ := step["rpc"].(string)
	method, ok := r.unary[rpc]
	if !ok {
		return failf("unknown RPC %s", rpc)
	}
	request, err := substitute(orEmpty(step["request"]), r.vars)
	if err != nil {
		return err
	}
	expect, _ := step["expect"].(map[string]any)
	ctx, err := r.context()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	resp, err := method(ctx, request)
	var f failure
	if errors.As(err, &f) {
		return err
	}
	if err := checkOutcome(outcomeOf(err), expect); err != nil {
		return err
	}
	doc := map[string]any{}
	if resp != nil {
		if doc, err = toJSON(resp); err != nil {
			return err
		}
	}
	fields, err := substitute(orEmpty(expect["fields"]), r.vars)
	if err != nil {
		return err
	}
	if err := check(doc, fields.(map[string]any)); err != nil {
		return err
	}
	wanted, _ := expect["capture"].(map[string]any)
	return capture(doc, wanted, r.vars)
}

func orEmpty(v any) any {
	if v == nil {
		return map[string]any{}
	}
	return v
}

func (r *runner) runScript(step map[string]any) error {
	script, _ := step["script"].([]any)
	streams := map[string]*runStream{}
	texts := map[string]string{}
	defer func() {
		for _, s := range streams {
			s.cancel()
		}
	}()
	for index, a := range script {
		action, _ := a.(map[string]any)
		name, _ := action["stream"].(string)
		if name == "" {
			name = "main"
		}
		where := fmt.Sprintf("[%d] %s", index, name)
		s, ok := streams[name]
		if !ok {
			ctx, err := r.context()
			if err != nil {
				return err
			}
			if s, err = openStream(ctx, r.client, r.timeout); err != nil {
				return failf("%s: open: %v", where, err)
			}
			streams[name] = s
		}
		switch {
		case action["send"] != nil:
			message, err := substitute(action["send"], r.vars)
			if err != nil {
				return err
			}
			if _, isStart := message.(map[string]any)["start"]; isStart {
				texts[name] = ""
			}
			request := &pb.RunRequest{}
			if err := fromJSON(message, request); err != nil {
				return err
			}
			if err := s.stream.Send(request); err != nil {
				return failf("%s: send: %v", where, err)
			}
		case action["half_close"] == true:
			if err := s.stream.CloseSend(); err != nil {
				return failf("%s: half-close: %v", where, err)
			}
		case action["expect_event"] != nil:
			if err := r.expectEvent(s, action, texts, name, where); err != nil {
				return err
			}
		case action["expect_end"] != nil:
			for {
				it, err := s.next(r.timeout)
				if err != nil {
					return failf("%s: %v", where, err)
				}
				if it.end != nil {
					expect, _ := action["expect_end"].(map[string]any)
					if err := checkOutcome(*it.end, expect); err != nil {
						return failf("%s: %v", where, err)
					}
					break
				}
				if t, ok := lookup(it.event, "textDelta.text").(string); ok {
					texts[name] += t
				}
			}
		default:
			return failf("%s: unknown action %v", where, action)
		}
	}
	return nil
}

func (r *runner) expectEvent(s *runStream, action map[string]any, texts map[string]string, name, where string) error {
	kind, _ := action["expect_event"].(string)
	forbid, _ := action["forbid"].([]any)
	var event map[string]any
	for event == nil {
		it, err := s.next(r.timeout)
		if err != nil {
			return failf("%s: %v", where, err)
		}
		if it.end != nil {
			return failf("%s: stream ended (%s/%s %s) before %s", where, it.end.code, it.end.reason, it.end.message, kind)
		}
		if t, ok := lookup(it.event, "textDelta.text").(string); ok {
			texts[name] += t
		}
		for _, f := range forbid {
			if _, bad := it.event[f.(string)]; bad {
				return failf("%s: got %s while waiting for %s", where, f, kind)
			}
		}
		if _, ok := it.event[kind]; ok {
			event = it.event
		}
	}
	local := map[string]string{"text": texts[name]}
	for k, v := range r.vars {
		local[k] = v
	}
	if want, ok := action["text"]; ok {
		w, err := substitute(want, local)
		if err != nil {
			return err
		}
		if w != texts[name] {
			return failf("%s %s: text %q, want %q", where, kind, texts[name], w)
		}
	}
	fields, err := substitute(orEmpty(action["fields"]), local)
	if err != nil {
		return err
	}
	if err := check(event, fields.(map[string]any)); err != nil {
		return failf("%s %s: %v", where, kind, err)
	}
	wanted, _ := action["capture"].(map[string]any)
	return capture(event, wanted, r.vars)
}

func (r *runner) run(only map[string]bool) bool {
	ok := true
	steps, _ := r.scenario["steps"].([]any)
	for _, s := range steps {
		step, _ := s.(map[string]any)
		name, _ := step["name"].(string)
		if len(only) > 0 && !only[name] {
			continue
		}
		var err error
		if _, isScript := step["script"]; isScript {
			err = r.runScript(step)
		} else {
			err = r.runUnary(step)
		}
		if err != nil {
			ok = false
			fmt.Printf("FAIL %s: %v\n", name, err)
		} else {
			fmt.Printf("PASS %s\n", name)
		}
	}
	return ok
}

type stepList map[string]bool

func (s stepList) String() string     { return fmt.Sprint(map[string]bool(s)) }
func (s stepList) Set(v string) error { s[v] = true; return nil }

func defaultScenario() string {
	// client/go/conformance -> repository root.
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
			candidate := filepath.Join(dir, "conformance", "scenario.json")
			if _, err := os.Stat(candidate); err == nil {
				return candidate
			}
		}
	}
	return "conformance/scenario.json"
}

func main() {
	address := flag.String("address", "127.0.0.1:50051", "orchestrator address")
	prefix := flag.String("prefix", "go", "agent-id prefix and tenant suffix")
	path := flag.String("scenario", defaultScenario(), "scenario file")
	only := stepList{}
	flag.Var(only, "step", "run only this step (repeatable)")
	flag.Parse()

	raw, err := os.ReadFile(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	scenario := map[string]any{}
	if err := json.Unmarshal(raw, &scenario); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", *path, err)
		os.Exit(2)
	}
	if f, _ := scenario["format"].(float64); f != scenarioFormat {
		fmt.Fprintf(os.Stderr, "%s: format %v, this runner knows %d\n", *path, scenario["format"], scenarioFormat)
		os.Exit(2)
	}
	timeout := 20 * time.Second
	if t, ok := scenario["timeout_seconds"].(float64); ok {
		timeout = time.Duration(t * float64(time.Second))
	}
	conn, err := dial(*address)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer conn.Close()
	client := pb.NewOrchestratorServiceClient(conn)
	r := &runner{
		scenario: scenario,
		client:   client,
		unary:    unaryMethods(client),
		// The API key of the runner's tenant (empty against a server without authentication).
		vars:    map[string]string{"prefix": *prefix, "token": os.Getenv("ORCHESTRATOR_TOKEN")},
		timeout: timeout,
	}
	if !r.run(only) {
		conn.Close()
		os.Exit(1)
	}
}

// dial connects to one address, or to several replicas (a comma-separated list) with
// client-side round robin over them.
func dial(address string) (*grpc.ClientConn, error) {
	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	if !strings.Contains(address, ",") {
		return grpc.NewClient(address, creds)
	}
	replicas := manual.NewBuilderWithScheme("replicas")
	var state resolver.State
	for _, a := range strings.Split(address, ",") {
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a})
	}
	replicas.InitialState(state)
	return grpc.NewClient("replicas:///orchestrator", creds, grpc.WithResolvers(replicas),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin": {}}]}`))
}
