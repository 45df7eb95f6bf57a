# Conformance: the shared scenario (conformance/scenario.json) run by the Python, Go,
# TypeScript and grpcurl runners against one live server, the client examples, and the
# buf breaking check's test (tests/conformance). Included by the root Makefile.

.PHONY: conformance-build conformance

# tsc of build-polyglot compiles client/ts/conformance and the examples into client/ts/dist;
# the Go runner and example are built into client/go/.bin for the tests to run.
conformance-build: build-polyglot ## Build the Go/TS conformance runners and client examples
	cd $(GO_CLIENT) && $(GO) build -o .bin/ ./conformance ./examples/agents ./examples/follow

conformance: $(STAMP) conformance-build ## Run the conformance scenario in every client, the examples and the breaking-check test
	$(VENV)/bin/pytest tests/conformance
