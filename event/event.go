package event

import (
	"time"
)

// Type names what an Event reports. The string values are part of the
// JSON Lines schema (docs/events.md) and must not change.
type Type string

// Event types.
const (
	// SessionStart: a client connected. Client, Listener, Upstream are set.
	SessionStart Type = "session_start"
	// Connected: the upstream connection is open (Upstream, LatencyMS = dial time).
	Connected Type = "upstream_connected"
	// SessionEnd: both directions are closed. Reason, DurationMS, BytesC2S, BytesS2C.
	SessionEnd Type = "session_end"
	// Greeting: the server's first line. Status, Text, Code, Timestamp (APOP).
	Greeting Type = "greeting"
	// Command: a complete client command line. ID, Verb, Args, Pipelined.
	Command Type = "command"
	// Response: the end of a server reply (status line, and body if multi-line).
	// ID, Verb, Status, Text, Code, Multiline, Octets, WireOctets, Lines, LatencyMS.
	Response Type = "response"
	// Continuation: a SASL challenge line ("+ base64") from the server. ID, Verb, Text.
	Continuation Type = "continuation"
	// SASLResponse: a client line answering a SASL challenge. ID, Args (redacted).
	SASLResponse Type = "sasl_response"
	// State: the POP3 state changed. From, To.
	State Type = "state"
	// Violation: a rule from the catalog fired. Rule, Severity, By, Detail, Offset.
	Violation Type = "violation"
	// Opaque: the decoder stopped interpreting a session (TLS, binary, not
	// POP3); the relay carries on. By, Detail.
	Opaque Type = "opaque"
	// Note: free-form diagnostic from the proxy or decoder (Detail).
	Note Type = "note"
	// Dropped: the bus discarded events for a slow observer. Observer, Dropped.
	Dropped Type = "dropped"
	// TLS: a TLS handshake finished (or failed) on one leg. TLS, Error.
	TLS Type = "tls"
	// Login: the session entered TRANSACTION. User, Verb (the mechanism:
	// PASS, APOP, AUTH PLAIN ...).
	Login Type = "login"
)

// Side says which peer sent the bytes an event is about.
type Side uint8

// Sides of a POP3 session.
const (
	NoSide Side = iota
	Client
	Server
)

// String returns "client", "server" or "".
func (s Side) String() string {
	switch s {
	case Client:
		return "client"
	case Server:
		return "server"
	}
	return ""
}

// Other returns the opposite side.
func (s Side) Other() Side {
	switch s {
	case Client:
		return Server
	case Server:
		return Client
	}
	return NoSide
}

// MarshalText implements encoding.TextMarshaler so Side serialises as
// "client" or "server".
func (s Side) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Side) UnmarshalText(b []byte) error {
	switch string(b) {
	case "client":
		*s = Client
	case "server":
		*s = Server
	default:
		*s = NoSide
	}
	return nil
}

// Severity of a violation, as in the rules catalog.
type Severity string

// Severities, most serious first.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Rank orders severities: error 3, warning 2, info 1, unknown 0.
func (s Severity) Rank() int {
	switch s {
	case Error:
		return 3
	case Warning:
		return 2
	case Info:
		return 1
	}
	return 0
}

// Event is the one record every observer receives. It is flat so that the
// JSON Lines form is easy to query (jq '.rule'); which fields are set
// depends on Type (see the constants above and docs/events.md). An Event is
// immutable once published: observers must not modify it.
type Event struct {
	Type    Type      `json:"type"`
	Session string    `json:"session"`
	Time    time.Time `json:"time"`
	// Seq orders the events of one session, starting at 1.
	Seq uint64 `json:"seq"`
	// By is the side whose bytes (or action) caused the event.
	By Side `json:"by,omitempty"`
	// Offset is the byte offset, in By's direction of the stream, of the
	// start of the line the event is about.
	Offset int64 `json:"offset,omitempty"`

	// Session lifecycle.
	Client   string `json:"client,omitempty"`   // client address
	Listener string `json:"listener,omitempty"` // address the client connected to
	Upstream string `json:"upstream,omitempty"` // server address as dialled
	Reason   string `json:"reason,omitempty"`   // session_end: why it ended
	// Error is a transport-level error text (dial failure, reset).
	Error      string  `json:"error,omitempty"`
	DurationMS float64 `json:"duration_ms,omitempty"`
	BytesC2S   int64   `json:"bytes_c2s,omitempty"`
	BytesS2C   int64   `json:"bytes_s2c,omitempty"`

	// Exchanges. ID links a command to its continuations and response
	// (1-based per session; 0 for the greeting).
	ID        uint64 `json:"id,omitempty"`
	Verb      string `json:"verb,omitempty"` // upper-cased keyword
	Args      string `json:"args,omitempty"` // secrets replaced by "<redacted>"
	Redacted  bool   `json:"redacted,omitempty"`
	Pipelined bool   `json:"pipelined,omitempty"` // sent while replies were outstanding
	Status    string `json:"status,omitempty"`    // "+OK", "-ERR", "+" or the raw indicator
	Text      string `json:"text,omitempty"`      // status text after the indicator
	Code      string `json:"code,omitempty"`      // response code, without brackets
	Timestamp string `json:"timestamp,omitempty"` // greeting: APOP timestamp <...>
	Multiline bool   `json:"multiline,omitempty"`
	// Octets is the delivered (unstuffed, CRLF) size of a multi-line body,
	// the figure LIST must report for a message (RFC 1939 §11).
	Octets int64 `json:"octets,omitempty"`
	// WireOctets counts the raw body bytes including stuffing dots and the
	// terminator line.
	WireOctets int64   `json:"wire_octets,omitempty"`
	Lines      int64   `json:"lines,omitempty"`
	LatencyMS  float64 `json:"latency_ms,omitempty"`

	// State changes.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`

	// Violations.
	Rule     string   `json:"rule,omitempty"`
	Severity Severity `json:"severity,omitempty"`
	Detail   string   `json:"detail,omitempty"`

	// Observer drops.
	Observer string `json:"observer,omitempty"`
	Dropped  uint64 `json:"dropped,omitempty"`

	// User is the login identity (USER/APOP name, SASL authcid) on login
	// events and on session_end. Never a password.
	User string `json:"user,omitempty"`

	// TLS describes a handshake on one leg (type "tls").
	TLS *TLSInfo `json:"tls,omitempty"`
}

// TLSInfo is what popscope saw of a TLS handshake on one leg.
type TLSInfo struct {
	// Leg is "client" (client↔proxy) or "server" (proxy↔upstream).
	Leg Side `json:"leg"`
	// Mode: "implicit" (TLS from the first byte), "stls" (upgrade), or
	// "passthrough" (not terminated; fields come from the handshake bytes).
	Mode        string    `json:"mode"`
	Version     string    `json:"version,omitempty"` // "TLS 1.3"
	Cipher      string    `json:"cipher,omitempty"`
	SNI         string    `json:"sni,omitempty"`
	ALPN        string    `json:"alpn,omitempty"`
	PeerSubject string    `json:"peer_subject,omitempty"`
	PeerIssuer  string    `json:"peer_issuer,omitempty"`
	PeerExpiry  time.Time `json:"peer_not_after,omitzero"`
	// Verified reports whether the peer certificate chain was verified;
	// VerifyError says why not (or "skipped: --upstream-insecure").
	Verified    bool   `json:"verified,omitempty"`
	VerifyError string `json:"verify_error,omitempty"`
	// Offered lists the versions a ClientHello offered (passthrough).
	Offered []string `json:"offered,omitempty"`
}

// Millis converts a duration to fractional milliseconds for the *MS fields.
func Millis(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
