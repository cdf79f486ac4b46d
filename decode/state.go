package decode

// State is the tracker's view of a POP3 session (docs/pop3-rules.md §2.1).
type State string

// States. AUTH.* are sub-states of RFC 1939's AUTHORIZATION.
const (
	GreetingWait State = "GREETING-WAIT"
	AuthReady    State = "AUTH.READY"
	AuthUser     State = "AUTH.USER"
	AuthSASL     State = "AUTH.SASL"
	AuthSTLS     State = "AUTH.STLS"
	TLSUpgrade   State = "TLS-UPGRADE"
	Transaction  State = "TRANSACTION"
	Update       State = "UPDATE"
	Opaque       State = "OPAQUE"
	Aborted      State = "ABORTED"
	Closed       State = "CLOSED"
)

// Authorization reports whether s is one of the AUTHORIZATION sub-states.
func (s State) Authorization() bool {
	switch s {
	case AuthReady, AuthUser, AuthSASL, AuthSTLS:
		return true
	}
	return false
}

// shape is what a +OK reply to a command looks like (§3.1).
type shape uint8

const (
	single shape = iota
	multi
	sasl    // AUTH mech: challenges then a single line
	unknown // unknown keyword: single, unless data follows (§3.5)
)

// commandInfo is the static knowledge about one keyword (§2.3, §3.1).
type commandInfo struct {
	// legal in AUTHORIZATION / TRANSACTION (table 2.3); AUTH.USER legality
	// is judged by STATE-003/004 separately.
	inAuth, inTrans bool
	// shape of +OK, given the number of arguments.
	shape func(nargs int) shape
	// authCmd: an -ERR may be followed by a server close (RFC 1939 §4).
	authCmd bool
	// capability that must have been listed, if CAPA succeeded.
	capa string
}

func always(s shape) func(int) shape { return func(int) shape { return s } }

// multiIfNoArg: LIST, UIDL, LANG: multi-line without argument.
func multiIfNoArg(n int) shape {
	if n == 0 {
		return multi
	}
	return single
}

var commands = map[string]commandInfo{
	"USER": {inAuth: true, shape: always(single), authCmd: true, capa: "USER"},
	"PASS": {inAuth: true, shape: always(single), authCmd: true, capa: "USER"},
	"APOP": {inAuth: true, shape: always(single), authCmd: true},
	"AUTH": {inAuth: true, authCmd: true, shape: func(n int) shape {
		if n == 0 {
			return multi // legacy mechanism discovery (§6.17)
		}
		return sasl
	}},
	"STLS": {inAuth: true, shape: always(single), capa: "STLS"},
	"CAPA": {inAuth: true, inTrans: true, shape: always(multi)},
	"QUIT": {inAuth: true, inTrans: true, shape: always(single)},
	"UTF8": {inAuth: true, shape: always(single), capa: "UTF8"},
	"LANG": {inAuth: true, inTrans: true, shape: multiIfNoArg, capa: "LANG"},
	"STAT": {inTrans: true, shape: always(single)},
	"LIST": {inTrans: true, shape: multiIfNoArg},
	"RETR": {inTrans: true, shape: always(multi)},
	"DELE": {inTrans: true, shape: always(single)},
	"NOOP": {inTrans: true, shape: always(single)},
	"RSET": {inTrans: true, shape: always(single)},
	"TOP":  {inTrans: true, shape: always(multi), capa: "TOP"},
	"UIDL": {inTrans: true, shape: multiIfNoArg, capa: "UIDL"},
	"LAST": {inTrans: true, shape: always(single)},
	"RPOP": {inAuth: true, shape: always(single), authCmd: true},
}
