package record

import (
	"bytes"
	"encoding/base64"
	"strings"

	"github.com/popscope/popscope/decode/wire"
	"github.com/popscope/popscope/event"
)

// StandInSecret is the password inside stand-ins.
const StandInSecret = "redacted"

// WithStandIns returns a copy of a redacted recording in which every
// placeholder the decoder would judge is replaced by a syntactically
// valid stand-in, so that decoding the copy (popscope check) finds what
// decoding the original traffic found, not artefacts of redaction: an
// APOP digest becomes 32 zeros, a SASL message a well-formed message of
// its mechanism carrying user and the password "redacted" (PLAIN
// "\0user\0redacted", LOGIN user then "redacted", CRAM-MD5 "user
// 000…0", XOAUTH2/OAUTHBEARER their vendor shapes, others "redacted"),
// base64-encoded. PASS and RPOP arguments stay the placeholder (nothing
// looks at them). A line split over data records moves whole into the
// record that ends it. A recording without redaction is returned as is.
func (rec *Recording) WithStandIns(user string) *Recording {
	if !rec.Header.Redacted {
		return rec
	}
	ph := []byte(rec.Header.Placeholder)
	if len(ph) == 0 {
		ph = []byte(Placeholder)
	}
	if user == "" {
		user = StandInSecret
	}
	out := *rec
	out.Records = make([]Record, 0, len(rec.Records))
	tr := &Tracker{Full: true}
	mechs := map[int]authInfo{}
	var line []byte
	lastClient := -1
	for _, r := range rec.Records {
		switch {
		case r.Kind == KindData && r.Side == event.Server:
			tr.Server(r.Data)
		case r.Kind == KindGap && r.Lost > 0:
			tr.Lost()
		case r.Kind == KindData && r.Side == event.Client:
			var buf []byte
			d := r.Data
			for len(d) > 0 {
				i := bytes.IndexByte(d, '\n')
				if i < 0 {
					line = append(line, d...)
					break
				}
				line = append(line, d[:i+1]...)
				d = d[i+1:]
				buf = append(buf, standInLine(tr, mechs, line, ph, user)...)
				line = line[:0]
			}
			r.Data = buf
			lastClient = len(out.Records)
		}
		out.Records = append(out.Records, r)
	}
	if len(line) > 0 && lastClient >= 0 {
		out.Records[lastClient].Data = append(out.Records[lastClient].Data, line...)
	}
	return &out
}

// standInLine classifies one complete client line with the tracker and
// returns it with its placeholder replaced.
type authInfo struct {
	mech string
	ir   int // 1 if the AUTH line had an initial response
}

func standInLine(tr *Tracker, mechs map[int]authInfo, line, ph []byte, user string) []byte {
	mode := tr.Mode()
	sasl := mode == IsSASL
	if mode == SASLUnlessKeyword {
		kw, _ := isKeywordStart(line)
		sasl = !kw
	}
	p := tr.ClientLine(line, sasl)
	body, _ := wire.TrimEOL(line)
	eol := line[len(body):]
	if sasl {
		if p == nil || !bytes.Equal(body, ph) {
			return line
		}
		a := mechs[p.ID]
		return append([]byte(saslStandIn(a.mech, p.Responses+a.ir, user)), eol...)
	}
	cmd := wire.ParseCommand(body)
	if p != nil && cmd.Keyword == "AUTH" && len(cmd.Args) > 0 {
		a := authInfo{mech: strings.ToUpper(cmd.Args[0])}
		if len(cmd.Args) > 1 {
			a.ir = 1
		}
		mechs[p.ID] = a
	}
	if !bytes.HasSuffix(body, ph) {
		return line
	}
	prefix := body[:len(body)-len(ph)]
	switch {
	case cmd.Keyword == "APOP" && len(cmd.Args) == 2:
		return append(append(append([]byte(nil), prefix...), strings.Repeat("0", 32)...), eol...)
	case cmd.Keyword == "AUTH" && len(cmd.Args) == 2:
		return append(append(append([]byte(nil), prefix...), saslStandIn(strings.ToUpper(cmd.Args[0]), 1, user)...), eol...)
	}
	return line
}

// saslStandIn is a base64 SASL message of mech; n is the message's
// 1-based number in the exchange.
func saslStandIn(mech string, n int, user string) string {
	var m string
	switch mech {
	case "PLAIN":
		m = "\x00" + user + "\x00" + StandInSecret
	case "LOGIN":
		m = StandInSecret
		if n == 1 {
			m = user
		}
	case "CRAM-MD5":
		m = user + " " + strings.Repeat("0", 32)
	case "XOAUTH2":
		m = "user=" + user + "\x01auth=Bearer " + StandInSecret + "\x01\x01"
	case "OAUTHBEARER":
		m = "n,a=" + user + ",\x01auth=Bearer " + StandInSecret + "\x01\x01"
	default:
		m = StandInSecret
	}
	return base64.StdEncoding.EncodeToString([]byte(m))
}
