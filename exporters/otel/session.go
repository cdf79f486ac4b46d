package otel

import (
	"context"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/event"
)

// maxPendingViolations bounds the client-side violations waiting for the
// command line they are about (they are published just before it).
const maxPendingViolations = 32

// spanEvent is a span event recorded for later.
type spanEvent struct {
	name  string
	at    time.Time
	attrs []attribute.KeyValue
}

// exchange is one command and its reply.
type exchange struct {
	id         uint64
	verb       string // as sent, upper case, cut
	offset     int64
	start, end time.Time
	answered   bool
	pipelined  bool
	state      string // POP3 state when the command was sent
	msgNum     int64
	topLines   int64
	hasTop     bool
	mech       string
	status     string
	code, text string
	multiline  bool
	octets     int64
	wireOctets int64
	lines      int64
	challenges int64
	events     []spanEvent
	errRule    string // first error-severity violation
	errWhy     string
}

type tlsRec struct {
	at, start time.Time
	info      event.TLSInfo
	err       string
}

type pendingViolation struct {
	e *event.Event
}

// session is the bounded record of one proxied connection.
type session struct {
	cfg *config
	m   *instruments

	id                         string
	start, last                time.Time
	client, listener, upstream string

	connectedAt   time.Time
	peer          string
	connectErr    string
	connectFailAt time.Time

	greetingAt   time.Time
	greetStatus  string
	greetCode    string
	greetText    string
	greetAPOP    bool
	greetEvents  []spanEvent
	greetPending bool // no greeting yet: server violations belong to it

	exchanges []*exchange
	open      []*exchange // awaiting a reply, oldest first
	byID      map[uint64]*exchange
	skipped   int
	pending   []pendingViolation

	events        []spanEvent // on the session span
	nEvents       int
	eventsDropped int

	tls        []tlsRec
	lastSTLSOK time.Time

	state       string
	user        string
	loginMech   string
	opaque      bool
	eventsLost  bool
	nCommands   int64
	nViolations int64
	maxSev      event.Severity
	errRule     string
	errWhy      string

	ended        bool
	endAt        time.Time
	reason       string
	endErr       string
	bytesC2S     int64
	bytesS2C     int64
	truncatedWhy string
}

func newSession(e *event.Event, cfg *config, m *instruments) *session {
	return &session{
		cfg: cfg, m: m,
		id: e.Session, start: e.Time, last: e.Time,
		client: e.Client, listener: e.Listener, upstream: e.Upstream,
		greetPending: true,
		byID:         make(map[uint64]*exchange),
	}
}

func (s *session) observe(e *event.Event) {
	if e.Time.After(s.last) {
		s.last = e.Time
	}
	switch e.Type {
	case event.Connected:
		s.connectedAt, s.peer = e.Time, e.Upstream
	case event.Greeting:
		s.greetPending = false
		s.greetingAt = e.Time
		s.greetStatus, s.greetCode = e.Status, e.Code
		s.greetText = e.Text
		s.greetAPOP = e.Timestamp != ""
	case event.Command:
		s.command(e)
	case event.Continuation:
		if x := s.byID[e.ID]; x != nil {
			x.challenges++
			s.addEvent(&x.events, spanEvent{name: EventChallenge, at: e.Time}) // never the challenge text
		}
	case event.SASLResponse:
		x := s.byID[e.ID]
		s.matchPending(e.Offset, e.Time, x, true)
		if x != nil {
			var a attrs
			a.flag(KeySASLCancel, e.Args == "*") // "*" is the only argument ever looked at
			s.addEvent(&x.events, spanEvent{name: EventSASLResponse, at: e.Time, attrs: a})
		}
	case event.Response:
		s.response(e)
	case event.State:
		s.state = e.To
		s.addEvent(&s.events, spanEvent{name: EventState, at: e.Time,
			attrs: []attribute.KeyValue{KeyStateFrom.String(cut(e.From, 20)), KeyStateTo.String(cut(e.To, 20))}})
	case event.Violation:
		s.violation(e)
	case event.Opaque:
		s.opaque = true
		var a attrs
		a.str(KeyRuleBy, e.By.String())
		a.str(KeyDetail, s.scrub(e.Detail, e.By == event.Client))
		s.addEvent(&s.events, spanEvent{name: EventOpaque, at: e.Time, attrs: a})
	case event.Note:
		if e.Error != "" && s.connectedAt.IsZero() && s.connectErr == "" {
			s.connectErr, s.connectFailAt = e.Error, e.Time
		}
		var a attrs
		a.str(KeyDetail, s.scrub(e.Detail, e.By == event.Client))
		a.str(KeyError, cut(e.Error, 200))
		a.str(KeyRuleID, ruleIDOrEmpty(e.Rule))
		s.addEvent(&s.events, spanEvent{name: EventNote, at: e.Time, attrs: a})
	case event.Login:
		s.loginMech = loginMech(e.Verb)
		if e.User != "" {
			s.user = e.User
		}
		var a attrs
		a.str(KeyLoginMechanism, s.loginMech)
		if s.cfg.userName {
			a.str(semconv.UserNameKey, cut(e.User, 100))
		}
		if x := s.byID[e.ID]; x != nil {
			s.addEvent(&x.events, spanEvent{name: EventLogin, at: e.Time, attrs: a})
		} else {
			s.addEvent(&s.events, spanEvent{name: EventLogin, at: e.Time, attrs: a})
		}
	case event.TLS:
		if e.TLS != nil && len(s.tls) < 4 {
			r := tlsRec{at: e.Time, info: *e.TLS, err: e.Error}
			r.start = e.Time
			switch {
			case e.TLS.Mode == "stls" && !s.lastSTLSOK.IsZero():
				r.start = s.lastSTLSOK
			case e.TLS.Mode == "implicit" && e.TLS.Leg == event.Server && !s.connectedAt.IsZero():
				r.start = s.connectedAt
			case e.TLS.Mode == "implicit":
				r.start = s.start
			}
			if r.start.After(r.at) {
				r.start = r.at
			}
			s.tls = append(s.tls, r)
		}
	case event.SessionEnd:
		s.ended = true
		s.endAt, s.reason, s.endErr = e.Time, e.Reason, e.Error
		s.bytesC2S, s.bytesS2C = e.BytesC2S, e.BytesS2C
		if e.User != "" {
			s.user = e.User
		}
		if s.reason == "upstream unreachable" && s.connectErr == "" {
			s.connectErr, s.connectFailAt = e.Error, e.Time
			if s.connectErr == "" {
				s.connectErr = "upstream unreachable"
			}
		}
		s.flushPending()
	}
}

func (s *session) command(e *event.Event) {
	s.nCommands++
	if len(s.exchanges) >= s.cfg.maxSpans {
		s.skipped++
		s.matchPending(e.Offset, e.Time, nil, false)
		return
	}
	x := &exchange{id: e.ID, verb: cut(e.Verb, 16), offset: e.Offset, start: e.Time, pipelined: e.Pipelined, state: s.state}
	commandArgs(x, e.Args)
	s.exchanges = append(s.exchanges, x)
	s.open = append(s.open, x)
	if e.ID != 0 {
		s.byID[e.ID] = x
	}
	s.matchPending(e.Offset, e.Time, x, false)
}

func (s *session) response(e *event.Event) {
	x := s.byID[e.ID]
	if x == nil {
		return
	}
	for i, o := range s.open { // bounded by maxSpans
		if o == x {
			s.open = append(s.open[:i], s.open[i+1:]...)
			break
		}
	}
	x.answered = true
	x.end = e.Time
	x.status, x.code, x.text = e.Status, e.Code, e.Text
	x.multiline = e.Multiline
	x.octets, x.wireOctets, x.lines = e.Octets, e.WireOctets, e.Lines
	if x.verb == "STLS" && e.Status == "+OK" {
		s.lastSTLSOK = e.Time
	}
}

// violation files a violation under the span it is about: a client line
// violation under the command it is about (matched by offset: it is
// published just before the command), a server one under the oldest
// command awaiting its reply, or under the greeting, else the session.
func (s *session) violation(e *event.Event) {
	s.nViolations++
	if e.Severity.Rank() > s.maxSev.Rank() {
		s.maxSev = e.Severity
	}
	if e.Severity == event.Error && s.errRule == "" {
		s.errRule, s.errWhy = ruleID(e.Rule), ruleSummary(e.Rule)
	}
	if e.By == event.Client {
		if len(s.pending) >= maxPendingViolations {
			s.attach(s.pending[0].e, nil)
			s.pending = s.pending[1:]
		}
		s.pending = append(s.pending, pendingViolation{e: e})
		return
	}
	if len(s.open) > 0 {
		s.attach(e, s.open[0])
		return
	}
	if s.greetPending && e.By == event.Server {
		s.addEvent(&s.greetEvents, s.violationEvent(e, false))
		return
	}
	s.attach(e, nil)
}

// matchPending attaches the waiting client violations about the line at
// off; those about earlier lines can no longer match and go to the
// session span.
func (s *session) matchPending(off int64, at time.Time, x *exchange, sasl bool) {
	if len(s.pending) == 0 {
		return
	}
	keep := s.pending[:0]
	for _, p := range s.pending {
		switch {
		case p.e.Offset == off && p.e.Time.Equal(at):
			if x != nil {
				s.attachLine(p.e, x, sasl)
			} else {
				s.attach(p.e, nil)
			}
		case p.e.Offset < off:
			s.attach(p.e, nil)
		default:
			keep = append(keep, p)
		}
	}
	clear(s.pending[len(keep):])
	s.pending = keep
}

func (s *session) flushPending() {
	for _, p := range s.pending {
		s.attach(p.e, nil)
	}
	s.pending = nil
}

// attachLine attaches a violation about a client line; on a credentials
// line (or a SASL line) its detail is replaced by the rule summary.
func (s *session) attachLine(e *event.Event, x *exchange, sasl bool) {
	ev := s.violationEvent(e, sasl || secretVerb(x.verb))
	s.addEvent(&x.events, ev)
	s.markError(e, x)
}

func (s *session) attach(e *event.Event, x *exchange) {
	if x == nil {
		s.addEvent(&s.events, s.violationEvent(e, false))
		return
	}
	ev := s.violationEvent(e, secretVerb(x.verb))
	s.addEvent(&x.events, ev)
	s.markError(e, x)
}

func (s *session) markError(e *event.Event, x *exchange) {
	if e.Severity == event.Error && x.errRule == "" {
		x.errRule, x.errWhy = ruleID(e.Rule), ruleSummary(e.Rule)
	}
}

func (s *session) violationEvent(e *event.Event, secretLine bool) spanEvent {
	var a attrs
	a.str(KeyRuleID, ruleID(e.Rule))
	a.str(KeyRuleSeverity, severityName(e.Severity))
	a.str(KeyRuleBy, sideName(e.By))
	r := decode.LookupRule(e.Rule)
	if r != nil {
		a.str(KeyRuleSummary, r.Summary)
		a.str(KeyRuleRef, r.Ref)
	}
	switch {
	case secretLine:
		// The detail may quote the line; say what the rule says instead.
		a.str(KeyDetail, "detail withheld: the line carries credentials or SASL data")
	default:
		a.str(KeyDetail, s.scrub(e.Detail, e.By == event.Client))
	}
	a.num(KeyOffset, e.Offset)
	return spanEvent{name: EventViolation, at: e.Time, attrs: a}
}

// scrub cuts free text to 500 bytes; for text about client bytes it also
// replaces every quoted excerpt, which may be a credentials line.
func (s *session) scrub(text string, client bool) string {
	if client {
		text = elideQuoted(text)
	}
	return cut(text, 500)
}

func (s *session) addEvent(list *[]spanEvent, ev spanEvent) {
	if s.nEvents >= s.cfg.maxEvents {
		s.eventsDropped++
		return
	}
	s.nEvents++
	*list = append(*list, ev)
}

// truncate ends an unfinished session at the last event seen.
func (s *session) truncate(why string) {
	if s.ended {
		return
	}
	s.truncatedWhy = why
	s.endAt = s.last
	s.flushPending()
}

func (s *session) failed() bool {
	return s.connectErr != "" || s.errRule != "" || s.tlsFailed() != nil
}

func (s *session) tlsFailed() *tlsRec {
	for i := range s.tls {
		if s.tls[i].err != "" {
			return &s.tls[i]
		}
	}
	return nil
}

// build starts and ends every span of the session, with the events' times.
func (s *session) build(ctx context.Context, tr trace.Tracer) {
	end := s.endAt
	if end.IsZero() || end.Before(s.start) {
		end = s.last
	}
	root := attrs{
		semconv.NetworkProtocolName("pop3"),
		semconv.NetworkTransportTCP,
		semconv.SessionID(s.id),
	}
	if h, p := splitHostPort(s.client); h != "" {
		root = append(root, semconv.ClientAddress(h), semconv.NetworkPeerAddress(h))
		if p > 0 {
			root = append(root, semconv.ClientPort(p), semconv.NetworkPeerPort(p))
		}
	}
	if h, p := splitHostPort(s.upstream); h != "" {
		root = append(root, semconv.ServerAddress(h))
		if p > 0 {
			root = append(root, semconv.ServerPort(p))
		}
	}
	if h, p := splitHostPort(s.listener); h != "" {
		root = append(root, semconv.NetworkLocalAddress(h))
		if p > 0 {
			root = append(root, semconv.NetworkLocalPort(p))
		}
	}
	root.str(KeyListener, s.listener)
	root.str(KeyState, cut(s.state, 20))
	if s.ended {
		root.str(KeyCloseReason, closeReason(s.reason))
	}
	root = append(root, KeyCommands.Int64(s.nCommands), KeyViolations.Int64(s.nViolations))
	root.str(KeyMaxSeverity, string(s.maxSev))
	root.num(KeyClientBytes, s.bytesC2S)
	root.num(KeyServerBytes, s.bytesS2C)
	root.str(KeyLoginMechanism, s.loginMech)
	if s.cfg.userName {
		root.str(semconv.UserNameKey, cut(s.user, 100))
	}
	root.flag(KeyOpaque, s.opaque)
	root.flag(KeyEventsLost, s.eventsLost)
	if s.truncatedWhy != "" {
		root = append(root, KeyTruncated.Bool(true), KeyTruncatedWhy.String(s.truncatedWhy))
	}
	root.num(KeySpansSkipped, int64(s.skipped))

	var status codes.Code
	var why string
	tlsBad := s.tlsFailed()
	switch {
	case s.connectErr != "":
		status, why = codes.Error, "upstream unreachable: "+cut(s.connectErr, 200)
		root = append(root, semconv.ErrorTypeKey.String("upstream_unreachable"))
	case tlsBad != nil:
		status, why = codes.Error, "TLS handshake failed on the "+tlsBad.info.Leg.String()+" leg: "+cut(tlsBad.err, 200)
		root = append(root, semconv.ErrorTypeKey.String("tls_handshake"))
	case s.errRule != "":
		status, why = codes.Error, "protocol violation "+s.errRule+": "+s.errWhy
		root = append(root, semconv.ErrorTypeKey.String(s.errRule))
	}

	ctx, span := tr.Start(ctx, SpanSession, trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(s.start), trace.WithAttributes(root...))
	addEvents(span, s.events)

	// Upstream connect.
	if !s.connectedAt.IsZero() || s.connectErr != "" {
		var a attrs
		if h, p := splitHostPort(s.upstream); h != "" {
			a = append(a, semconv.ServerAddress(h))
			if p > 0 {
				a = append(a, semconv.ServerPort(p))
			}
		}
		if h, p := splitHostPort(s.peer); h != "" {
			a = append(a, semconv.NetworkPeerAddress(h))
			if p > 0 {
				a = append(a, semconv.NetworkPeerPort(p))
			}
		}
		a = append(a, semconv.NetworkTransportTCP)
		cend := s.connectedAt
		if cend.IsZero() {
			cend = s.connectFailAt
			if cend.IsZero() {
				cend = end
			}
			a = append(a, semconv.ErrorTypeKey.String("upstream_unreachable"))
		}
		_, c := tr.Start(ctx, SpanConnect, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithTimestamp(s.start), trace.WithAttributes(a...))
		if s.connectedAt.IsZero() {
			c.SetStatus(codes.Error, "upstream unreachable: "+cut(s.connectErr, 200))
		}
		c.End(trace.WithTimestamp(cend))
	}

	// Greeting: from the open connection to the server's first line.
	if !s.greetingAt.IsZero() || len(s.greetEvents) > 0 {
		gstart := s.connectedAt
		if gstart.IsZero() {
			gstart = s.start
		}
		gend := s.greetingAt
		if gend.IsZero() {
			gend = end
		}
		var a attrs
		a.str(KeyStatus, s.greetStatus)
		a.str(KeyResponseCode, cut(s.greetCode, 40))
		a.str(KeyResponseText, cut(s.greetText, 200))
		a.flag(KeyGreetingAPOP, s.greetAPOP)
		_, g := tr.Start(ctx, SpanGreeting, trace.WithTimestamp(gstart), trace.WithAttributes(a...))
		addEvents(g, s.greetEvents)
		g.End(trace.WithTimestamp(gend))
	}

	// TLS handshakes.
	for _, r := range s.tls {
		a := tlsAttrs(r)
		_, t := tr.Start(ctx, SpanTLS, trace.WithTimestamp(r.start), trace.WithAttributes(a...))
		if r.err != "" {
			t.SetStatus(codes.Error, cut(r.err, 200))
		}
		t.End(trace.WithTimestamp(r.at))
	}

	// Commands.
	for _, x := range s.exchanges {
		var a attrs
		a = append(a, KeyCommand.String(x.verb), KeyCommandID.Int64(int64(x.id)))
		if x.msgNum > 0 {
			a = append(a, KeyMessageNumber.Int64(x.msgNum))
		}
		if x.hasTop {
			a = append(a, KeyTopLines.Int64(x.topLines))
		}
		a.str(KeyAuthMech, x.mech)
		a.flag(KeyPipelined, x.pipelined)
		a.str(KeyState, cut(x.state, 20))
		xend := x.end
		if x.answered {
			a.str(KeyStatus, cut(x.status, 8))
			a.str(KeyResponseCode, cut(x.code, 40))
			if x.verb != "AUTH" {
				a.str(KeyResponseText, cut(x.text, 200))
			}
			if x.multiline {
				a = append(a, KeyMultiline.Bool(true), KeyOctets.Int64(x.octets),
					KeyWireOctets.Int64(x.wireOctets), KeyLines.Int64(x.lines))
			}
		} else {
			a = append(a, KeyNoReply.Bool(true))
			xend = end
		}
		a.num(KeySASLRounds, x.challenges)
		if x.errRule != "" {
			a = append(a, semconv.ErrorTypeKey.String(x.errRule))
		}
		_, c := tr.Start(ctx, commandSpanName(x.verb), trace.WithTimestamp(x.start), trace.WithAttributes(a...))
		addEvents(c, x.events)
		if x.errRule != "" {
			c.SetStatus(codes.Error, "protocol violation "+x.errRule+": "+x.errWhy)
		}
		if xend.Before(x.start) {
			xend = x.start
		}
		c.End(trace.WithTimestamp(xend))
	}

	if status == codes.Error {
		span.SetStatus(codes.Error, why)
	}
	span.End(trace.WithTimestamp(end))
}

func addEvents(span trace.Span, evs []spanEvent) {
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	for _, ev := range evs {
		span.AddEvent(ev.name, trace.WithTimestamp(ev.at), trace.WithAttributes(ev.attrs...))
	}
}

func tlsAttrs(r tlsRec) attrs {
	in := r.info
	a := attrs{KeyTLSLeg.String(in.Leg.String()), semconv.TLSProtocolNameTLS}
	a.str(KeyTLSMode, cut(in.Mode, 20))
	if v, ok := strings.CutPrefix(in.Version, "TLS "); ok {
		a = append(a, semconv.TLSProtocolVersion(v))
	}
	a.str(semconv.TLSCipherKey, cut(in.Cipher, 80))
	a.str(semconv.TLSNextProtocolKey, cut(in.ALPN, 40))
	a.str(KeyTLSSNI, cut(in.SNI, 255))
	a = append(a, semconv.TLSEstablished(r.err == ""))
	// The peer of the client leg is the client, of the server leg the server.
	if in.Leg == event.Client {
		a.str(semconv.TLSClientSubjectKey, cut(in.PeerSubject, 255))
		a.str(semconv.TLSClientIssuerKey, cut(in.PeerIssuer, 255))
		if !in.PeerExpiry.IsZero() {
			a = append(a, semconv.TLSClientNotAfter(in.PeerExpiry.UTC().Format(time.RFC3339)))
		}
	} else {
		a.str(semconv.TLSServerSubjectKey, cut(in.PeerSubject, 255))
		a.str(semconv.TLSServerIssuerKey, cut(in.PeerIssuer, 255))
		if !in.PeerExpiry.IsZero() {
			a = append(a, semconv.TLSServerNotAfter(in.PeerExpiry.UTC().Format(time.RFC3339)))
		}
	}
	if in.PeerSubject != "" || in.Verified {
		a = append(a, KeyTLSVerified.Bool(in.Verified))
	}
	a.str(KeyTLSVerifyErr, cut(in.VerifyError, 200))
	if r.err != "" {
		a = append(a, semconv.ErrorTypeKey.String("tls_handshake"), KeyError.String(cut(r.err, 200)))
	}
	return a
}

// commandArgs keeps only the arguments known to be safe: message numbers,
// the TOP line count and the AUTH mechanism. Nothing else of a command
// line is exported, whatever the event carries.
func commandArgs(x *exchange, args string) {
	f := strings.Fields(args)
	switch x.verb {
	case "RETR", "DELE", "LIST", "UIDL", "TOP":
		if len(f) > 0 {
			x.msgNum = smallNumber(f[0])
		}
		if x.verb == "TOP" && len(f) > 1 {
			if n := smallNumber(f[1]); n >= 0 && isDigits(f[1]) {
				x.topLines, x.hasTop = n, true
			}
		}
	case "AUTH":
		if len(f) > 0 && isMechanism(f[0]) {
			x.mech = strings.ToUpper(f[0])
		}
	}
}

func smallNumber(s string) int64 {
	if !isDigits(s) || len(s) > 10 {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isMechanism: a SASL mechanism name (RFC 4422 §3.1: 1-20 of A-Z 0-9 - _).
func isMechanism(s string) bool {
	if len(s) == 0 || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// secretVerb: commands whose line carries credentials.
func secretVerb(v string) bool {
	switch v {
	case "PASS", "APOP", "AUTH", "RPOP", "USER":
		return true
	}
	return false
}

// loginMech bounds the login mechanism ("PASS", "APOP", "AUTH PLAIN").
func loginMech(v string) string {
	f := strings.Fields(v)
	switch {
	case len(f) == 0:
		return ""
	case len(f) >= 2 && f[0] == "AUTH" && isMechanism(f[1]):
		return "AUTH " + strings.ToUpper(f[1])
	case isMechanism(f[0]):
		return cut(strings.ToUpper(f[0]), 8)
	}
	return "_OTHER"
}

func splitHostPort(addr string) (string, int) {
	if addr == "" {
		return "", 0
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return cut(addr, 255), 0
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

// knownVerbs: POP3 commands of RFC 1939, 2449, 2595, 5034, 6856.
var knownVerbs = map[string]bool{
	"USER": true, "PASS": true, "APOP": true, "AUTH": true, "STLS": true, "CAPA": true,
	"QUIT": true, "UTF8": true, "LANG": true, "STAT": true, "LIST": true, "RETR": true,
	"DELE": true, "NOOP": true, "RSET": true, "TOP": true, "UIDL": true, "LAST": true, "RPOP": true,
}

// verbName bounds a verb for metric attributes and span names.
func verbName(v string) string {
	if knownVerbs[v] {
		return v
	}
	return "_OTHER"
}

func commandSpanName(v string) string {
	if knownVerbs[v] {
		return "POP3 " + v
	}
	return SpanOtherCommand
}

// ruleID bounds a rule ID to the catalog.
func ruleID(id string) string {
	if r := decode.LookupRule(id); r != nil {
		return r.ID
	}
	return "_OTHER"
}

func ruleIDOrEmpty(id string) string {
	if id == "" {
		return ""
	}
	return ruleID(id)
}

func ruleSummary(id string) string {
	if r := decode.LookupRule(id); r != nil {
		return r.Summary
	}
	return "unknown rule"
}

// elideQuoted replaces each Go-quoted excerpt ("..." with backslash
// escapes, optionally followed by "…") by "<elided>". Decoder details quote
// the offending line, which on the client side may hold a password.
func elideQuoted(s string) string {
	if !strings.Contains(s, `"`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '"' {
			b.WriteByte(c)
			i++
			continue
		}
		// Find the closing quote, honouring escapes.
		j := i + 1
		for j < len(s) && s[j] != '"' {
			if s[j] == '\\' {
				j++
			}
			j++
		}
		b.WriteString("<elided>")
		if j >= len(s) { // unterminated: drop the rest
			break
		}
		i = j + 1
		if strings.HasPrefix(s[i:], "…") {
			i += len("…")
		}
	}
	return b.String()
}
