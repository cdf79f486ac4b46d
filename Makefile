# popscope developer targets. Go only; e2e needs Dovecot and real clients
# (see e2e/doc.go), CI installs them (.ci/run).

GO       ?= go
FUZZTIME ?= 30s
BIN      ?= bin/popscope

.PHONY: all build test vet e2e e2e-otel bench fuzz fuzz-decode clean

all: build test

build:
	$(GO) build -o $(BIN) ./cmd/popscope

test:
	$(GO) vet ./... && $(GO) test -race -count=1 ./...

vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/ ./exporters/otel/e2e/ ./ui/

# End-to-end tests against a private Dovecot and curl, poplib, fetchmail,
# mpop (E2E_REQUIRE_ALL=1 fails instead of skipping when one is missing).
e2e:
	$(GO) vet -tags e2e ./e2e/ ./ui/
	$(GO) test -tags e2e -count=1 -v -timeout 20m ./e2e/
	$(GO) test -tags e2e -count=1 -v -timeout 5m -run E2E ./ui/

# OpenTelemetry end-to-end: traces exported to a real Jaeger v2 (built from
# tools/jaeger, its own module; POPSCOPE_JAEGER_BIN points at a prebuilt one,
# POPSCOPE_REQUIRE_JAEGER=1 fails instead of skipping without it).
e2e-otel:
	$(GO) vet -tags e2e ./exporters/otel/e2e/
	$(GO) test -tags e2e -count=1 -v -timeout 30m ./exporters/otel/e2e/

bench:
	@if [ -d bench ] && ls bench/*.go >/dev/null 2>&1; then \
		$(GO) test -run '^$$' -bench . -benchtime 1x ./bench/...; \
	else \
		echo "bench: no ./bench package yet; nothing to run"; \
	fi

# Runs every FuzzFeed* target found in ./decode/... for FUZZTIME each
# (go test -fuzz takes one package and one target at a time), then the
# recording reader's fuzz target.
fuzz: fuzz-decode
	$(GO) test -run '^$$' -fuzz '^FuzzReadRecording$$' -fuzztime $(FUZZTIME) ./exporters/record/

fuzz-decode:
	@found=0; \
	for f in $$(grep -rl --include='*_test.go' -E '^func FuzzFeed[A-Za-z0-9_]*\(' decode 2>/dev/null | sort); do \
		dir=./$$(dirname $$f); \
		for fn in $$(sed -n -E 's/^func (FuzzFeed[A-Za-z0-9_]*)\(.*/\1/p' $$f); do \
			found=1; \
			echo "== $$dir $$fn ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$dir || exit 1; \
		done; \
	done; \
	if [ $$found = 0 ]; then echo "fuzz: no FuzzFeed targets in ./decode yet; nothing to run"; fi

clean:
	rm -rf bin
