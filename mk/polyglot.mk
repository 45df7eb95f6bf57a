# Go and TypeScript clients generated from proto/ (client/go, client/ts; scripts/gen_polyglot.py).
# Included by the root Makefile, which defines $(STAMP) (the Python venv, with grpcio-tools'
# protoc) and $(PY). Everything installs itself from the registries: the Go plugins through
# the Go module proxy into client/go/.tools/bin, the npm packages from client/ts's lockfile.

GO ?= go
NPM ?= npm
GO_CLIENT := client/go
TS_CLIENT := client/ts
GO_TOOLS := $(GO_CLIENT)/.tools/bin

# Pinned plugin versions. protoc-gen-go matches the google.golang.org/protobuf runtime in
# client/go/go.mod; the plugins print their versions into the generated headers, so a
# change here shows up in `make check-gen-polyglot` until `make gen-polyglot` is run.
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2

# Stamps named by version: bumping a pin reinstalls that plugin, nothing else.
GO_TOOL_STAMPS := \
	$(GO_TOOLS)/.protoc-gen-go@$(PROTOC_GEN_GO_VERSION) \
	$(GO_TOOLS)/.protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
TS_STAMP := $(TS_CLIENT)/node_modules/.installed

.PHONY: polyglot-tools gen-polyglot check-gen-polyglot build-polyglot clean-polyglot

$(GO_TOOLS)/.protoc-gen-go@%:
	GOBIN=$(abspath $(GO_TOOLS)) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$*
	touch $@

$(GO_TOOLS)/.protoc-gen-go-grpc@%:
	GOBIN=$(abspath $(GO_TOOLS)) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$*
	touch $@

# npm ci installs exactly package-lock.json; install scripts are not needed (ts-proto,
# grpc-js and typescript are plain JavaScript), so none run.
$(TS_STAMP): $(TS_CLIENT)/package.json $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && $(NPM) ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

polyglot-tools: $(GO_TOOL_STAMPS) $(TS_STAMP) ## Install the pinned Go plugins and the TS client's npm packages (stamped)

gen-polyglot: $(STAMP) polyglot-tools ## Regenerate the Go and TypeScript clients from proto/
	$(PY) scripts/gen_polyglot.py

check-gen-polyglot: $(STAMP) polyglot-tools ## Fail if the committed Go/TS generated code differs from proto/
	$(PY) scripts/gen_polyglot.py --check

build-polyglot: polyglot-tools ## go build + go vet the Go client; tsc (strict) the TS client into client/ts/dist
	cd $(GO_CLIENT) && $(GO) build ./... && $(GO) vet ./...
	cd $(TS_CLIENT) && node_modules/.bin/tsc -p tsconfig.json

clean-polyglot: ## Remove the Go plugins, node_modules and client/ts/dist
	rm -rf $(GO_CLIENT)/.tools $(TS_CLIENT)/node_modules $(TS_CLIENT)/dist
