package otel

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/popscope/popscope/event"
)

func TestTraceTree(t *testing.T) {
	h := newHarness(t)
	s, evs := curlSession("fb6e16123a08")
	h.feed(evs...)
	tr := h.trace("fb6e16123a08")

	want := []string{SpanSession, SpanConnect, SpanGreeting, "POP3 CAPA", "POP3 AUTH", "POP3 RETR", "POP3 QUIT"}
	if len(tr) != len(want) {
		names := make([]string, 0, len(tr))
		for n := range tr {
			names = append(names, n)
		}
		t.Fatalf("spans %v, want %v", names, want)
	}
	root := tr[SpanSession]
	if root.SpanKind != trace.SpanKindServer || root.Parent.IsValid() {
		t.Errorf("root kind %v parent %v", root.SpanKind, root.Parent)
	}
	if !root.StartTime.Equal(s.time(0)) || !root.EndTime.Equal(s.time(32.9)) {
		t.Errorf("root %v..%v, want event times %v..%v", root.StartTime, root.EndTime, s.time(0), s.time(32.9))
	}
	if root.InstrumentationScope.Name != ScopeName {
		t.Errorf("scope %q", root.InstrumentationScope.Name)
	}
	for _, n := range want[1:] {
		sp := tr[n]
		if sp.Parent.SpanID() != root.SpanContext.SpanID() {
			t.Errorf("%s: parent %v, want the session span", n, sp.Parent.SpanID())
		}
	}
	for k, v := range map[string]any{
		"network.protocol.name": "pop3", "network.transport": "tcp", "session.id": "fb6e16123a08",
		"client.address": "127.0.0.1", "client.port": int64(34668), "server.address": "127.0.0.1", "server.port": int64(11110),
		"network.local.port": int64(1110), "pop3.close_reason": "client closed", "pop3.state": "CLOSED",
		"pop3.commands": int64(4), "pop3.violations": int64(0), "pop3.client.bytes": int64(89), "pop3.server.bytes": int64(565),
		"pop3.login.mechanism": "AUTH CRAM-MD5",
	} {
		if got := attrOf(root.Attributes, k).AsInterface(); got != v {
			t.Errorf("root %s = %v (%T), want %v", k, got, got, v)
		}
	}
	if hasAttr(root.Attributes, "user.name") {
		t.Error("user.name exported without WithUserName")
	}
	if root.Status.Code != codes.Unset {
		t.Errorf("root status %v", root.Status)
	}

	conn := tr[SpanConnect]
	if conn.SpanKind != trace.SpanKindClient || !conn.StartTime.Equal(s.time(0)) || !conn.EndTime.Equal(s.time(1.7)) {
		t.Errorf("connect %v %v..%v", conn.SpanKind, conn.StartTime, conn.EndTime)
	}
	g := tr[SpanGreeting]
	if !g.StartTime.Equal(s.time(1.7)) || !g.EndTime.Equal(s.time(1.8)) || attrOf(g.Attributes, "pop3.greeting.apop").AsBool() != true {
		t.Errorf("greeting %v..%v %v", g.StartTime, g.EndTime, g.Attributes)
	}

	retr := tr["POP3 RETR"]
	if !retr.StartTime.Equal(s.time(22.0)) || !retr.EndTime.Equal(s.time(29.7)) {
		t.Errorf("RETR %v..%v", retr.StartTime, retr.EndTime)
	}
	for k, v := range map[string]any{
		"pop3.command": "RETR", "pop3.command.id": int64(3), "pop3.message_number": int64(6), "pop3.status": "+OK",
		"pop3.octets": int64(280), "pop3.wire_octets": int64(288), "pop3.lines": int64(16), "pop3.multiline": true,
		"pop3.state": "TRANSACTION", "pop3.response_text": "280 octets",
	} {
		if got := attrOf(retr.Attributes, k).AsInterface(); got != v {
			t.Errorf("RETR %s = %v, want %v", k, got, v)
		}
	}

	auth := tr["POP3 AUTH"]
	if got := attrOf(auth.Attributes, "pop3.auth.mechanism").AsString(); got != "CRAM-MD5" {
		t.Errorf("AUTH mechanism %q", got)
	}
	if got := attrOf(auth.Attributes, "pop3.sasl.challenges").AsInt64(); got != 1 {
		t.Errorf("AUTH challenges %d", got)
	}
	if hasAttr(auth.Attributes, "pop3.response_text") {
		t.Error("AUTH reply text exported")
	}
	var names []string
	for _, e := range auth.Events {
		names = append(names, e.Name)
	}
	if strings.Join(names, ",") != "pop3.sasl.challenge,pop3.sasl.response,pop3.login" {
		t.Errorf("AUTH events %v", names)
	}
	if h.exp.Sessions() != 0 {
		t.Errorf("%d sessions still tracked", h.exp.Sessions())
	}
}

func TestPipelinedSpansOverlap(t *testing.T) {
	h := newHarness(t)
	s := newScript("pipe")
	h.feed(
		s.at(0, event.Event{Type: event.SessionStart, Client: "127.0.0.1:5000", Upstream: "127.0.0.1:110"}),
		s.at(1, event.Event{Type: event.Connected}),
		s.at(2, event.Event{Type: event.Greeting, Status: "+OK"}),
		s.at(10, event.Event{Type: event.Command, ID: 1, Verb: "RETR", Args: "1"}),
		s.at(11, event.Event{Type: event.Command, ID: 2, Verb: "RETR", Args: "2", Pipelined: true}),
		s.at(12, event.Event{Type: event.Command, ID: 3, Verb: "DELE", Args: "1", Pipelined: true}),
		s.at(20, event.Event{Type: event.Response, ID: 1, Verb: "RETR", Status: "+OK", Multiline: true}),
		s.at(25, event.Event{Type: event.Response, ID: 2, Verb: "RETR", Status: "-ERR", Text: "no such message"}),
		s.at(30, event.Event{Type: event.Response, ID: 3, Verb: "DELE", Status: "+OK"}),
		s.at(40, event.Event{Type: event.SessionEnd, Reason: "client closed"}),
	)
	tr := h.trace("pipe")
	r1, r2, d := tr["POP3 RETR"], tr["POP3 RETR#2"], tr["POP3 DELE"]
	if attrOf(r1.Attributes, "pop3.command.id").AsInt64() != 1 {
		r1, r2 = r2, r1
	}
	check := func(name string, start, end, gotStart, gotEnd time.Time) {
		if !gotStart.Equal(start) || !gotEnd.Equal(end) {
			t.Errorf("%s: %v..%v, want %v..%v", name, gotStart, gotEnd, start, end)
		}
	}
	check("RETR 1", s.time(10), s.time(20), r1.StartTime, r1.EndTime)
	check("RETR 2", s.time(11), s.time(25), r2.StartTime, r2.EndTime)
	check("DELE 1", s.time(12), s.time(30), d.StartTime, d.EndTime)
	if !(r2.StartTime.Before(r1.EndTime) && d.StartTime.Before(r2.EndTime)) {
		t.Error("pipelined spans do not overlap")
	}
	if attrOf(r1.Attributes, "pop3.pipelined").AsBool() || !attrOf(r2.Attributes, "pop3.pipelined").AsBool() {
		t.Error("pop3.pipelined wrong")
	}
	if attrOf(r2.Attributes, "pop3.status").AsString() != "-ERR" || r2.Status.Code != codes.Unset {
		t.Errorf("-ERR reply: status attr %v, span status %v (a -ERR is an answer, not a span error)",
			attrOf(r2.Attributes, "pop3.status"), r2.Status)
	}
}

func TestViolationsAreSpanEvents(t *testing.T) {
	h := newHarness(t)
	s := newScript("viol")
	h.feed(
		s.at(0, event.Event{Type: event.SessionStart, Client: "127.0.0.1:5000", Upstream: "127.0.0.1:110"}),
		s.at(1, event.Event{Type: event.Connected}),
		s.at(2, event.Event{Type: event.Violation, By: event.Server, Rule: "POP3-GREET-002", Severity: event.Error, Detail: "APOP timestamp is not msg-id shaped"}),
		s.at(2, event.Event{Type: event.Greeting, Status: "+OK"}),
		// A client line violation is published just before its command.
		s.at(5, event.Event{Type: event.Violation, By: event.Client, Offset: 40, Rule: "POP3-LINE-001", Severity: event.Error, Detail: `client line ends in bare LF: "NOOP"`}),
		s.at(5, event.Event{Type: event.Command, By: event.Client, Offset: 40, ID: 1, Verb: "NOOP"}),
		s.at(6, event.Event{Type: event.Response, ID: 1, Verb: "NOOP", Status: "+OK"}),
		s.at(7, event.Event{Type: event.Command, By: event.Client, Offset: 46, ID: 2, Verb: "RETR", Args: "1"}),
		s.at(9, event.Event{Type: event.Violation, By: event.Server, Offset: 300, Rule: "POP3-LINE-006", Severity: event.Info, Detail: "line longer than 1000 octets"}),
		s.at(10, event.Event{Type: event.Response, ID: 2, Verb: "RETR", Status: "+OK", Multiline: true}),
		s.at(11, event.Event{Type: event.Violation, By: event.Client, Rule: "POP3-CONN-004", Severity: event.Info, Detail: "connection ended without QUIT"}),
		s.at(11, event.Event{Type: event.SessionEnd, Reason: "client closed"}),
	)
	tr := h.trace("viol")
	ev := func(span string) map[string]attribute.Value {
		sp, ok := tr[span]
		if !ok || len(sp.Events) == 0 {
			t.Fatalf("%s: no span events", span)
		}
		e := sp.Events[0]
		if e.Name != EventViolation {
			t.Fatalf("%s: event %q", span, e.Name)
		}
		m := map[string]attribute.Value{}
		for _, kv := range e.Attributes {
			m[string(kv.Key)] = kv.Value
		}
		m["_time"] = attribute.StringValue(e.Time.Format(time.RFC3339Nano))
		return m
	}
	g := ev(SpanGreeting)
	if g["pop3.rule.id"].AsString() != "POP3-GREET-002" || g["pop3.rule.severity"].AsString() != "error" ||
		g["pop3.rule.by"].AsString() != "server" || g["pop3.rule.summary"].AsString() == "" || g["pop3.rule.ref"].AsString() == "" {
		t.Errorf("greeting violation %v", g)
	}
	n := ev("POP3 NOOP")
	if n["pop3.rule.id"].AsString() != "POP3-LINE-001" || n["pop3.offset"].AsInt64() != 40 || n["_time"].AsString() != s.time(5).Format(time.RFC3339Nano) {
		t.Errorf("NOOP violation %v", n)
	}
	if d := n["pop3.detail"].AsString(); d != "client line ends in bare LF: <elided>" {
		t.Errorf("client detail not elided: %q", d)
	}
	if tr["POP3 NOOP"].Status.Code != codes.Error || !strings.Contains(tr["POP3 NOOP"].Status.Description, "POP3-LINE-001") {
		t.Errorf("NOOP status %v", tr["POP3 NOOP"].Status)
	}
	r := ev("POP3 RETR")
	if r["pop3.rule.id"].AsString() != "POP3-LINE-006" || r["pop3.detail"].AsString() != "line longer than 1000 octets" {
		t.Errorf("RETR violation %v", r)
	}
	if tr["POP3 RETR"].Status.Code != codes.Unset {
		t.Error("an info violation made the span an error")
	}
	root := tr[SpanSession]
	var rootViol int
	for _, e := range root.Events {
		if e.Name == EventViolation {
			rootViol++
		}
	}
	if rootViol != 1 {
		t.Errorf("%d violations on the session span, want 1 (CONN-004)", rootViol)
	}
	if root.Status.Code != codes.Error || !strings.Contains(root.Status.Description, "POP3-GREET-002") {
		t.Errorf("root status %v", root.Status)
	}
	if attrOf(root.Attributes, "error.type").AsString() != "POP3-GREET-002" || attrOf(root.Attributes, "pop3.violations").AsInt64() != 4 ||
		attrOf(root.Attributes, "pop3.violation.max_severity").AsString() != "error" {
		t.Errorf("root attrs %v", root.Attributes)
	}

	rm := h.metrics()
	if n, _ := sumOf(rm, MetricViolations, KeyRuleID.String("POP3-LINE-001"), KeyRuleSeverity.String("error"), KeyRuleBy.String("client")); n != 1 {
		t.Errorf("violations{LINE-001} = %d", n)
	}
	if n, _ := sumOf(rm, MetricViolations); n != 4 {
		t.Errorf("violations total = %d", n)
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	h := newHarness(t)
	s := newScript("down")
	h.feed(
		s.at(0, event.Event{Type: event.SessionStart, Client: "127.0.0.1:5000", Listener: "127.0.0.1:1110", Upstream: "127.0.0.1:9"}),
		s.at(3, event.Event{Type: event.Note, Detail: "upstream unreachable; sent the client -ERR [SYS/TEMP] ...", Error: "dial tcp 127.0.0.1:9: connect: connection refused"}),
		s.at(3, event.Event{Type: event.SessionEnd, Reason: "upstream unreachable", Error: "dial tcp 127.0.0.1:9: connect: connection refused"}),
	)
	tr := h.trace("down")
	root, conn := tr[SpanSession], tr[SpanConnect]
	if root.Status.Code != codes.Error || !strings.Contains(root.Status.Description, "connection refused") {
		t.Errorf("root status %v", root.Status)
	}
	if attrOf(root.Attributes, "error.type").AsString() != "upstream_unreachable" {
		t.Errorf("root error.type %v", attrOf(root.Attributes, "error.type"))
	}
	if conn.Status.Code != codes.Error || !conn.EndTime.Equal(s.time(3)) || attrOf(conn.Attributes, "server.port").AsInt64() != 9 {
		t.Errorf("connect span %v %v %v", conn.Status, conn.EndTime, conn.Attributes)
	}
	if _, ok := tr[SpanGreeting]; ok {
		t.Error("greeting span without a greeting")
	}
	rm := h.metrics()
	if n, _ := sumOf(rm, MetricSessions, KeyCloseReason.String("upstream unreachable")); n != 1 {
		t.Errorf("sessions{upstream unreachable} = %d", n)
	}
}

func TestTLSSpans(t *testing.T) {
	h := newHarness(t)
	s := newScript("tls")
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	h.feed(
		s.at(0, event.Event{Type: event.SessionStart, Client: "127.0.0.1:5000", Upstream: "mail.example:110"}),
		s.at(1, event.Event{Type: event.Connected, Upstream: "192.0.2.1:110"}),
		s.at(2, event.Event{Type: event.Greeting, Status: "+OK"}),
		s.at(3, event.Event{Type: event.Command, ID: 1, Verb: "STLS"}),
		s.at(4, event.Event{Type: event.Response, ID: 1, Verb: "STLS", Status: "+OK"}),
		s.at(9, event.Event{Type: event.TLS, TLS: &event.TLSInfo{Leg: event.Server, Mode: "stls", Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256",
			SNI: "mail.example", PeerSubject: "CN=mail.example", PeerIssuer: "CN=Example CA", PeerExpiry: exp, Verified: true}}),
		s.at(12, event.Event{Type: event.TLS, Error: "remote error: tls: bad certificate", TLS: &event.TLSInfo{Leg: event.Client, Mode: "stls"}}),
		s.at(13, event.Event{Type: event.SessionEnd, Reason: "client reset"}),
	)
	tr := h.trace("tls")
	a, b := tr[SpanTLS], tr[SpanTLS+"#2"]
	if attrOf(a.Attributes, "pop3.tls.leg").AsString() != "server" {
		a, b = b, a
	}
	if !a.StartTime.Equal(s.time(4)) || !a.EndTime.Equal(s.time(9)) {
		t.Errorf("server-leg handshake %v..%v, want from the STLS +OK to the tls event", a.StartTime, a.EndTime)
	}
	for k, v := range map[string]any{"tls.protocol.version": "1.3", "tls.cipher": "TLS_AES_128_GCM_SHA256", "tls.server.subject": "CN=mail.example",
		"tls.server.not_after": "2027-01-01T00:00:00Z", "tls.established": true, "pop3.tls.mode": "stls", "pop3.tls.verified": true,
		"pop3.tls.sni": "mail.example"} {
		if got := attrOf(a.Attributes, k).AsInterface(); got != v {
			t.Errorf("tls %s = %v, want %v", k, got, v)
		}
	}
	if b.Status.Code != codes.Error || attrOf(b.Attributes, "tls.established").AsBool() {
		t.Errorf("failed handshake: %v %v", b.Status, b.Attributes)
	}
	if root := tr[SpanSession]; root.Status.Code != codes.Error || attrOf(root.Attributes, "error.type").AsString() != "tls_handshake" {
		t.Errorf("root %v %v", root.Status, attrOf(root.Attributes, "error.type"))
	}
	if attrOf(tr[SpanConnect].Attributes, "server.address").AsString() != "mail.example" ||
		attrOf(tr[SpanConnect].Attributes, "network.peer.address").AsString() != "192.0.2.1" {
		t.Errorf("connect attrs %v", tr[SpanConnect].Attributes)
	}
}

func TestUserNameOption(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := newHarness(t, WithUserName(on))
		_, evs := curlSession("u")
		h.feed(evs...)
		tr := h.trace("u")
		got := attrOf(tr[SpanSession].Attributes, "user.name").AsString()
		if on && got != "alice" || !on && got != "" {
			t.Errorf("WithUserName(%v): user.name %q", on, got)
		}
		if !on && strings.Contains(allText(h.spans.GetSpans(), h.metrics()), "alice") {
			t.Error("the user name leaked without WithUserName")
		}
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t)
	_, evs := curlSession("m1")
	h.feed(evs[:10]...)
	rm := h.metrics()
	if n, _ := sumOf(rm, MetricSessionsActive); n != 1 {
		t.Errorf("active mid-session = %d", n)
	}
	h.feed(evs[10:]...)
	h.feed(&event.Event{Type: event.Dropped, Observer: "ui", Dropped: 7})
	// A session_end for a session never started does not unbalance the gauge.
	h.feed(&event.Event{Type: event.SessionEnd, Session: "ghost", Reason: "client closed"})
	rm = h.metrics()
	for _, c := range []struct {
		name  string
		match []attribute.KeyValue
		want  int64
	}{
		{MetricSessionsActive, nil, 0},
		{MetricSessions, []attribute.KeyValue{KeyCloseReason.String("client closed")}, 2},
		{MetricCommands, []attribute.KeyValue{KeyCommand.String("RETR"), KeyStatus.String("+OK")}, 1},
		{MetricCommands, nil, 4},
		{MetricBytes, []attribute.KeyValue{KeyDirection.String("client_to_server")}, 89},
		{MetricBytes, []attribute.KeyValue{KeyDirection.String("server_to_client")}, 565},
		{MetricObserverDropped, []attribute.KeyValue{KeyObserver.String("ui")}, 7},
	} {
		if got, _ := sumOf(rm, c.name, c.match...); got != c.want {
			t.Errorf("%s%v = %d, want %d", c.name, c.match, got, c.want)
		}
	}
	cnt, sum, ok := histOf(rm, MetricReplyDuration, KeyCommand.String("RETR"))
	if !ok || cnt != 1 || sum < 0.0075 || sum > 0.0077 {
		t.Errorf("reply.duration{RETR}: count %d sum %v", cnt, sum)
	}
	if cnt, _, _ := histOf(rm, MetricConnectDuration); cnt != 1 {
		t.Errorf("connect.duration count %d", cnt)
	}
}

func TestUnknownVerbsAreBounded(t *testing.T) {
	h := newHarness(t)
	s := newScript("odd")
	h.feed(
		s.at(0, event.Event{Type: event.SessionStart}),
		s.at(1, event.Event{Type: event.Command, ID: 1, Verb: "XSECRETVERBTHATISLONG", Args: "whatever"}),
		s.at(2, event.Event{Type: event.Response, ID: 1, Verb: "XSECRETVERBTHATISLONG", Status: "-ERR"}),
		s.at(3, event.Event{Type: event.SessionEnd}),
	)
	tr := h.trace("odd")
	sp, ok := tr[SpanOtherCommand]
	if !ok {
		t.Fatalf("no %q span", SpanOtherCommand)
	}
	if got := attrOf(sp.Attributes, "pop3.command").AsString(); len(got) > 20 {
		t.Errorf("pop3.command not cut: %q", got)
	}
	if n, _ := sumOf(h.metrics(), MetricCommands, KeyCommand.String("_OTHER"), KeyStatus.String("-ERR")); n != 1 {
		t.Errorf("commands{_OTHER} = %d", n)
	}
	if strings.Contains(allText(h.spans.GetSpans(), h.metrics()), "whatever") {
		t.Error("arguments of an unknown command exported")
	}
}

func TestBoundsAndEviction(t *testing.T) {
	var logs []string
	h := newHarness(t, WithMaxSessions(2), WithMaxSpansPerSession(2), WithLogf(func(f string, a ...any) { logs = append(logs, f) }))
	a, b, c := newScript("a"), newScript("b"), newScript("c")
	h.feed(
		a.at(0, event.Event{Type: event.SessionStart}),
		a.at(1, event.Event{Type: event.Command, ID: 1, Verb: "NOOP"}),
		a.at(2, event.Event{Type: event.Command, ID: 2, Verb: "NOOP", Pipelined: true}),
		a.at(3, event.Event{Type: event.Command, ID: 3, Verb: "NOOP", Pipelined: true}),
		a.at(4, event.Event{Type: event.Command, ID: 4, Verb: "NOOP", Pipelined: true}),
		b.at(5, event.Event{Type: event.SessionStart}),
		c.at(6, event.Event{Type: event.SessionStart}), // evicts a
	)
	if h.exp.Sessions() != 2 {
		t.Fatalf("%d sessions tracked, want 2", h.exp.Sessions())
	}
	tr := h.trace("a")
	root := tr[SpanSession]
	if !attrOf(root.Attributes, "pop3.truncated").AsBool() || attrOf(root.Attributes, "pop3.spans_skipped").AsInt64() != 2 {
		t.Errorf("evicted root attrs %v", root.Attributes)
	}
	if !root.EndTime.Equal(a.time(4)) {
		t.Errorf("evicted session ends %v, want its last event %v", root.EndTime, a.time(4))
	}
	if n := len(tr) - 1; n != 2 {
		t.Errorf("%d command spans, want the cap 2", n)
	}
	for name, sp := range tr {
		if name != SpanSession && !attrOf(sp.Attributes, "pop3.reply.missing").AsBool() {
			t.Errorf("%s: unanswered command without pop3.reply.missing", name)
		}
	}
	if len(logs) != 1 {
		t.Errorf("eviction logged %d times", len(logs))
	}
	// Later events of the evicted session are ignored; its end still
	// balances the active gauge.
	h.feed(a.at(7, event.Event{Type: event.SessionEnd, Reason: "client closed"}))
	h.exp.Close()
	h.exp.Close() // idempotent
	h.feed(newScript("late").at(0, event.Event{Type: event.SessionStart}))
	rm := h.metrics()
	if n, _ := sumOf(rm, MetricTelemetryDrops, KeyReason.String(DropSessionEvicted)); n != 1 {
		t.Errorf("evictions counted %d", n)
	}
	if n, _ := sumOf(rm, MetricTelemetryDrops, KeyReason.String(DropSpanCap)); n != 2 {
		t.Errorf("span-cap drops counted %d", n)
	}
	if n, _ := sumOf(rm, MetricSessionsActive); n != 2 {
		t.Errorf("active = %d, want 2 (b, c)", n)
	}
	var roots int
	for _, sp := range h.spans.GetSpans() {
		if sp.Name == SpanSession {
			roots++
			if id := attrOf(sp.Attributes, "session.id").AsString(); id != "a" &&
				attrOf(sp.Attributes, "pop3.truncated.reason").AsString() != "exporter closed" {
				t.Errorf("session %s closed without the truncation reason", id)
			}
		}
	}
	if roots != 3 {
		t.Errorf("%d session spans after Close, want 3", roots)
	}
}

func TestEventCap(t *testing.T) {
	h := newHarness(t, WithMaxEventsPerSession(3))
	s := newScript("ev")
	evs := []*event.Event{s.at(0, event.Event{Type: event.SessionStart})}
	for i := range 10 {
		evs = append(evs, s.at(float64(i+1), event.Event{Type: event.Note, Detail: "n"}))
	}
	evs = append(evs, s.at(20, event.Event{Type: event.SessionEnd}))
	h.feed(evs...)
	if n := len(h.trace("ev")[SpanSession].Events); n != 3 {
		t.Errorf("%d events kept, want 3", n)
	}
	if n, _ := sumOf(h.metrics(), MetricTelemetryDrops, KeyReason.String(DropEventCap)); n != 7 {
		t.Errorf("event-cap drops %d", n)
	}
}

func TestTailSampling(t *testing.T) {
	h := newHarness(t, WithSampleRatio(0))
	clean, bad, down := newScript("clean"), newScript("bad"), newScript("down")
	h.feed(
		clean.at(0, event.Event{Type: event.SessionStart}),
		clean.at(1, event.Event{Type: event.SessionEnd, Reason: "client closed"}),
		bad.at(0, event.Event{Type: event.SessionStart}),
		bad.at(1, event.Event{Type: event.Violation, By: event.Client, Rule: "POP3-CONN-004", Severity: event.Info}),
		bad.at(2, event.Event{Type: event.SessionEnd, Reason: "client closed"}),
		down.at(0, event.Event{Type: event.SessionStart}),
		down.at(1, event.Event{Type: event.SessionEnd, Reason: "upstream unreachable", Error: "refused"}),
	)
	got := map[string]bool{}
	for _, sp := range h.spans.GetSpans() {
		if sp.Name == SpanSession {
			got[attrOf(sp.Attributes, "session.id").AsString()] = true
		}
	}
	if got["clean"] || !got["bad"] || !got["down"] {
		t.Errorf("kept %v, want bad and down only", got)
	}
	if n, _ := sumOf(h.metrics(), MetricSessions); n != 3 {
		t.Errorf("metrics count %d sessions, want all 3", n)
	}

	// Ratio 0.5 keeps about half, deterministically by session ID.
	h2 := newHarness(t, WithSampleRatio(0.5))
	kept := 0
	for i := range 400 {
		s := newScript("s" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26)))
		h2.feed(s.at(0, event.Event{Type: event.SessionStart}), s.at(1, event.Event{Type: event.SessionEnd}))
	}
	for _, sp := range h2.spans.GetSpans() {
		if sp.Name == SpanSession {
			kept++
		}
	}
	if kept < 140 || kept > 260 {
		t.Errorf("ratio 0.5 kept %d of 400", kept)
	}
}

func TestOwnDropsMarkSessions(t *testing.T) {
	h := newHarness(t, WithObserverName("otel"))
	s := newScript("lossy")
	h.feed(
		s.at(0, event.Event{Type: event.SessionStart}),
		&event.Event{Type: event.Dropped, Observer: "transcript", Dropped: 3},
	)
	h.feed(s.at(1, event.Event{Type: event.SessionEnd}))
	if attrOf(h.trace("lossy")[SpanSession].Attributes, "pop3.events_lost").AsBool() {
		t.Error("another observer's loss marked the session")
	}
	s2 := newScript("lossy2")
	h.feed(
		s2.at(0, event.Event{Type: event.SessionStart}),
		&event.Event{Type: event.Dropped, Observer: "otel", Dropped: 3},
		s2.at(1, event.Event{Type: event.SessionEnd}),
	)
	if !attrOf(h.trace("lossy2")[SpanSession].Attributes, "pop3.events_lost").AsBool() {
		t.Error("own loss not marked")
	}
}

func TestWithoutTraces(t *testing.T) {
	h := newHarness(t, WithoutTraces())
	_, evs := curlSession("nt")
	h.feed(evs...)
	if n := len(h.spans.GetSpans()); n != 0 {
		t.Errorf("%d spans from a metrics-only exporter", n)
	}
	if n, _ := sumOf(h.metrics(), MetricCommands); n != 4 {
		t.Errorf("commands = %d", n)
	}
	if n, _ := sumOf(h.metrics(), MetricSessionsActive); n != 0 {
		t.Errorf("active = %d", n)
	}
}

func TestObserveOnBus(t *testing.T) {
	h := newHarness(t)
	bus := event.NewBus()
	bus.Subscribe(DefaultObserverName, h.exp)
	_, evs := curlSession("bus")
	for _, e := range evs {
		bus.Publish(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := bus.Close(ctx); err != nil {
		t.Fatal(err)
	}
	h.exp.Close()
	if n := len(h.trace("bus")); n != 7 {
		t.Errorf("%d spans via the bus, want 7", n)
	}
}

func TestElideQuoted(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:                                  `plain`,
		`line "PASS hunter2\r" here`:             `line <elided> here`,
		`a "x\"y" b "z"… c`:                      `a <elided> b <elided> c`,
		`unterminated "PASS hunter2`:             `unterminated <elided>`,
		`"` + strings.Repeat("a", 80) + `"… end`: `<elided> end`,
	} {
		if got := elideQuoted(in); got != want {
			t.Errorf("elideQuoted(%q) = %q, want %q", in, got, want)
		}
	}
}
