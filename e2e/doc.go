// Package e2e holds the end-to-end tests of popscope. They run the real
// binary in front of a private Dovecot and real POP3 clients (curl, Python
// poplib, fetchmail, mpop), and against hand-written raw TCP peers.
//
// The tests are behind the build tag "e2e" so that "go test ./..." stays
// fast and needs none of these programs:
//
//	make e2e   # go test -tags e2e -count=1 -v -timeout 20m ./e2e/
//
// Needed on the machine: dovecot-pop3d (Dovecot 2.3), fetchmail, mpop,
// curl and python3. Missing programs skip their tests, unless
// E2E_REQUIRE_ALL=1 is set (CI), which turns every skip into a failure.
// The tests run as root (Dovecot's standard privilege separation, mail
// served as "nobody") or as a normal user (every Dovecot process runs as
// that user). Everything listens on 127.0.0.1 on free ports and lives in
// one temporary directory, which is removed unless a test failed or
// E2E_KEEP=1 is set. POPSCOPE_BIN=path uses a prebuilt binary instead of
// building ./cmd/popscope; E2E_RACE=1 builds it with the race detector
// (CI does); E2E_SEED=n replays the random data of the garbage test.
package e2e
