package otel

import "go.opentelemetry.io/otel/attribute"

// Attribute keys of the pop3.* namespace. OpenTelemetry has no semantic
// conventions for POP3 (semantic-conventions #1945, #927), so popscope
// defines these; generic keys (client.address, session.id, error.type,
// tls.*) come from semconv v1.43. docs/telemetry.md lists every key with
// the spans and metrics that carry it.
const (
	// Session span.
	KeyState          = attribute.Key("pop3.state")        // final POP3 state (TRANSACTION, CLOSED, ABORTED…)
	KeyCloseReason    = attribute.Key("pop3.close_reason") // session_end reason: "client closed", "upstream unreachable"…
	KeyCommands       = attribute.Key("pop3.commands")     // commands seen in the session
	KeyViolations     = attribute.Key("pop3.violations")   // violations seen in the session
	KeyMaxSeverity    = attribute.Key("pop3.violation.max_severity")
	KeyClientBytes    = attribute.Key("pop3.client.bytes")    // bytes sent by the client
	KeyServerBytes    = attribute.Key("pop3.server.bytes")    // bytes sent by the server
	KeyLoginMechanism = attribute.Key("pop3.login.mechanism") // PASS, APOP, "AUTH PLAIN"…
	KeyOpaque         = attribute.Key("pop3.opaque")          // decoding stopped (TLS passthrough, not POP3)
	KeyTruncated      = attribute.Key("pop3.truncated")       // the trace is incomplete (see KeyTruncatedWhy)
	KeyTruncatedWhy   = attribute.Key("pop3.truncated.reason")
	KeySpansSkipped   = attribute.Key("pop3.spans_skipped") // commands over the per-session span cap
	KeyEventsLost     = attribute.Key("pop3.events_lost")   // the exporter's bus queue overflowed during the session
	KeyListener       = attribute.Key("pop3.listener")      // proxy address the client connected to
	KeyError          = attribute.Key("pop3.error")         // transport error text (dial failure, reset, TLS alert)

	// Command spans.
	KeyCommand       = attribute.Key("pop3.command")        // verb, upper case
	KeyCommandID     = attribute.Key("pop3.command.id")     // 1-based per session
	KeyMessageNumber = attribute.Key("pop3.message_number") // RETR, DELE, LIST, UIDL, TOP argument
	KeyTopLines      = attribute.Key("pop3.top.lines")      // TOP n: the line count asked for
	KeyAuthMech      = attribute.Key("pop3.auth.mechanism") // AUTH argument (mechanism only)
	KeyPipelined     = attribute.Key("pop3.pipelined")      // sent while earlier replies were outstanding
	KeyStatus        = attribute.Key("pop3.status")         // +OK, -ERR
	KeyResponseCode  = attribute.Key("pop3.response_code")  // RFC 2449 code without brackets: IN-USE, SYS/TEMP…
	KeyResponseText  = attribute.Key("pop3.response_text")  // status text (never for AUTH; cut to 200 bytes)
	KeyMultiline     = attribute.Key("pop3.multiline")
	KeyOctets        = attribute.Key("pop3.octets")        // delivered body size (dot-unstuffed)
	KeyWireOctets    = attribute.Key("pop3.wire_octets")   // raw body size incl. stuffing and terminator
	KeyLines         = attribute.Key("pop3.lines")         // body lines
	KeyNoReply       = attribute.Key("pop3.reply.missing") // the session ended before the reply
	KeySASLRounds    = attribute.Key("pop3.sasl.challenges")
	KeyGreetingAPOP  = attribute.Key("pop3.greeting.apop") // greeting carries an APOP timestamp

	// Span events.
	KeyRuleID       = attribute.Key("pop3.rule.id")
	KeyRuleSeverity = attribute.Key("pop3.rule.severity")
	KeyRuleBy       = attribute.Key("pop3.rule.by") // side that broke the rule: client, server
	KeyRuleSummary  = attribute.Key("pop3.rule.summary")
	KeyRuleRef      = attribute.Key("pop3.rule.ref") // RFC sections
	KeyDetail       = attribute.Key("pop3.detail")
	KeyOffset       = attribute.Key("pop3.offset")
	KeyStateFrom    = attribute.Key("pop3.state.from")
	KeyStateTo      = attribute.Key("pop3.state.to")
	KeySASLCancel   = attribute.Key("pop3.sasl.cancelled")

	// TLS spans (besides the semconv tls.* keys).
	KeyTLSLeg       = attribute.Key("pop3.tls.leg")  // client (client↔proxy) or server (proxy↔upstream)
	KeyTLSMode      = attribute.Key("pop3.tls.mode") // implicit, stls, passthrough
	KeyTLSVerified  = attribute.Key("pop3.tls.verified")
	KeyTLSVerifyErr = attribute.Key("pop3.tls.verify_error")
	KeyTLSSNI       = attribute.Key("pop3.tls.sni") // server name the client asked for

	// Metric attributes.
	KeyDirection = attribute.Key("pop3.direction")    // client_to_server, server_to_client
	KeyObserver  = attribute.Key("popscope.observer") // bus observer name
	KeyReason    = attribute.Key("popscope.reason")   // why telemetry was dropped
)

// Span names.
const (
	SpanSession  = "POP3 session"
	SpanConnect  = "POP3 connect"
	SpanGreeting = "POP3 greeting"
	SpanTLS      = "TLS handshake"
	// Command spans are named "POP3 " + verb ("POP3 RETR"); verbs outside
	// RFC 1939/2449/5034/6856 are named SpanOtherCommand.
	SpanOtherCommand = "POP3 _OTHER"
)

// Span event names.
const (
	EventViolation    = "pop3.violation"
	EventLogin        = "pop3.login"
	EventState        = "pop3.state"
	EventNote         = "pop3.note"
	EventOpaque       = "pop3.opaque"
	EventSASLResponse = "pop3.sasl.response"
	EventChallenge    = "pop3.sasl.challenge"
)
