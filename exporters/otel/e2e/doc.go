// Package e2e holds the end-to-end tests of popscope's OpenTelemetry
// export against a real Jaeger v2 (OTLP receiver, in-memory store, query
// API), all on 127.0.0.1.
//
// The tests are behind the build tag "e2e":
//
//	go test -tags e2e -count=1 -v -timeout 60m ./exporters/otel/e2e/
//
// Jaeger is pinned by its own tool module, tools/jaeger (never the
// project's go.mod: its dependencies conflict with the otel version popscope
// uses). The first run builds it (a cold build takes minutes: ~1.3 GB of
// modules and a long compile) into $POPSCOPE_CACHE_DIR or the user cache
// directory, under a name keyed by the hash of tools/jaeger/go.mod and
// go.sum; later runs reuse the binary. POPSCOPE_JAEGER_BIN=path uses a
// prebuilt one, POPSCOPE_JAEGER_BUILD_TIMEOUT bounds the build (default
// 40m). When Jaeger cannot be had the tests skip, unless
// POPSCOPE_REQUIRE_JAEGER=1 or E2E_REQUIRE_ALL=1 (CI), which makes that a
// failure.
//
// What runs:
//   - TestJaegerTraceTree: the in-process proxy in front of a scripted POP3
//     server (pipelined RETRs, a faulty reply) and of a dead upstream,
//     exporting over OTLP/gRPC; the trace tree, attributes, violation span
//     events, error statuses and the absence of the password are checked
//     through Jaeger's /api/traces.
//   - TestJaegerCurlDovecot: curl through the in-process proxy to a private
//     Dovecot (skipped without dovecot-pop3d and curl), over OTLP/HTTP.
//   - TestJaegerPopscopeBinary: the popscope binary with --otlp (skipped
//     while the proxy command has no --otlp flag).
package e2e
