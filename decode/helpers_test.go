package decode_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/popscope/popscope/decode"
	"github.com/popscope/popscope/decode/transcript"
	"github.com/popscope/popscope/event"
)

// t0 is the fixed start of every replayed session.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// run decodes steps (one Feed or Close per step, step i at t0 + At + i ms)
// and finishes the session one tick after the last step.
func run(opt decode.Options, steps []transcript.Step) []*event.Event {
	var evs []*event.Event
	if opt.Session == "" {
		opt.Session = "t"
	}
	s := decode.New(opt, func(e *event.Event) { evs = append(evs, e) })
	end := transcript.Replay(transcript.Spread(steps, time.Millisecond), s, t0)
	s.Finish(end.Add(time.Millisecond))
	return evs
}

// splitStep returns steps with step i cut in two Feed calls at offset k.
func splitStep(steps []transcript.Step, i, k int) []transcript.Step {
	out := make([]transcript.Step, 0, len(steps)+1)
	out = append(out, steps[:i]...)
	a, b := steps[i], steps[i]
	a.Data, b.Data = steps[i].Data[:k:k], steps[i].Data[k:]
	out = append(out, a, b)
	return append(out, steps[i+1:]...)
}

// bytewise returns steps with every data step fed one octet at a time.
func bytewise(steps []transcript.Step) []transcript.Step {
	var out []transcript.Step
	for _, st := range steps {
		if st.Close || len(st.Data) <= 1 {
			out = append(out, st)
			continue
		}
		for k := range st.Data {
			one := st
			one.Data = st.Data[k : k+1 : k+1]
			out = append(out, one)
		}
	}
	return out
}

// coalesce merges consecutive data steps of the same side into one write,
// as a TCP receiver may see them.
func coalesce(steps []transcript.Step) []transcript.Step {
	var out []transcript.Step
	for _, st := range steps {
		if n := len(out); n > 0 && !st.Close && !out[n-1].Close && out[n-1].Side == st.Side {
			out[n-1].Data = append(append([]byte{}, out[n-1].Data...), st.Data...)
			continue
		}
		out = append(out, st)
	}
	return out
}

// key is everything about an event that must not depend on how the bytes
// were chunked: all fields except times and latencies.
func key(e *event.Event) string {
	c := *e
	c.Time, c.LatencyMS, c.DurationMS = time.Time{}, 0, 0
	b, err := json.Marshal(&c)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// brief renders an event on one line for failure messages.
func brief(e *event.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s", e.Seq, e.Type)
	add := func(k string, v any) {
		switch x := v.(type) {
		case string:
			if x == "" {
				return
			}
			v = fmt.Sprintf("%q", x)
		case int64:
			if x == 0 {
				return
			}
		case uint64:
			if x == 0 {
				return
			}
		case bool:
			if !x {
				return
			}
		case event.Side:
			if x == event.NoSide {
				return
			}
		}
		fmt.Fprintf(&b, " %s=%v", k, v)
	}
	add("by", e.By)
	add("off", e.Offset)
	add("id", e.ID)
	add("verb", e.Verb)
	add("args", e.Args)
	add("pipelined", e.Pipelined)
	add("status", e.Status)
	add("text", e.Text)
	add("code", e.Code)
	add("ts", e.Timestamp)
	add("octets", e.Octets)
	add("wire", e.WireOctets)
	add("lines", e.Lines)
	add("from", e.From)
	add("to", e.To)
	add("rule", e.Rule)
	add("sev", string(e.Severity))
	add("detail", e.Detail)
	return b.String()
}

func dump(evs []*event.Event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString("\t")
		b.WriteString(brief(e))
		b.WriteString("\n")
	}
	return b.String()
}

var validStates = map[string]bool{}

func init() {
	for _, s := range []decode.State{decode.GreetingWait, decode.AuthReady, decode.AuthUser, decode.AuthSASL,
		decode.AuthSTLS, decode.TLSUpgrade, decode.Transaction, decode.Update, decode.Opaque, decode.Aborted, decode.Closed} {
		validStates[string(s)] = true
	}
}

// wellFormed checks the invariants every event stream of a finished
// session must keep, whatever the input. It returns the problems found.
func wellFormed(evs []*event.Event, session string) []string {
	var errs []string
	bad := func(e *event.Event, f string, a ...any) {
		errs = append(errs, fmt.Sprintf("%s: %s", brief(e), fmt.Sprintf(f, a...)))
	}
	state := string(decode.GreetingWait)
	var lastResp, lastCmd uint64
	cmds := map[uint64]bool{}
	answered := map[uint64]bool{}
	for i, e := range evs {
		if e.Type == "" {
			bad(e, "no Type")
		}
		if e.Session != session {
			bad(e, "Session %q, want %q", e.Session, session)
		}
		if e.Seq != uint64(i+1) {
			bad(e, "Seq %d at position %d (want %d)", e.Seq, i, i+1)
		}
		if e.Offset < 0 {
			bad(e, "negative offset")
		}
		switch e.Type {
		case event.Violation:
			r := decode.LookupRule(e.Rule)
			if r == nil || r.ID != e.Rule {
				bad(e, "rule %q is not in the catalog", e.Rule)
			}
			if e.Severity.Rank() == 0 {
				bad(e, "invalid severity %q", e.Severity)
			}
			if e.By != event.Client && e.By != event.Server {
				bad(e, "violation without a side")
			}
			if e.Detail == "" {
				bad(e, "violation without detail")
			}
		case event.State:
			if e.From != state {
				bad(e, "From %q, but the state was %q", e.From, state)
			}
			if e.From == e.To || !validStates[e.To] {
				bad(e, "bad transition")
			}
			state = e.To
		case event.Command:
			if e.ID != lastCmd+1 {
				bad(e, "command ID %d after %d", e.ID, lastCmd)
			}
			lastCmd = e.ID
			cmds[e.ID] = true
			if e.Verb == "" {
				bad(e, "command without verb")
			}
		case event.Response:
			if !cmds[e.ID] || answered[e.ID] {
				bad(e, "response to unknown or already answered command %d", e.ID)
			}
			if e.ID <= lastResp {
				bad(e, "response %d out of FIFO order (after %d)", e.ID, lastResp)
			}
			answered[e.ID], lastResp = true, e.ID
			if e.Status == "" {
				bad(e, "response without status")
			}
			if !e.Multiline && (e.Octets != 0 || e.Lines != 0 || e.WireOctets != 0) {
				bad(e, "single-line response with body figures")
			}
		case event.Continuation, event.SASLResponse:
			if !cmds[e.ID] || answered[e.ID] {
				bad(e, "SASL line for unknown or answered command %d", e.ID)
			}
		}
	}
	if len(evs) == 0 {
		errs = append(errs, "no events at all")
	} else if last := evs[len(evs)-1]; last.Type != event.State || (last.To != string(decode.Closed) && last.To != string(decode.Aborted)) {
		errs = append(errs, "last event is not the final state: "+brief(last))
	}
	return errs
}

var dumpFile = flag.String("dump", "", "TestDump: decode this transcript file and print its events")

// TestDump prints the events of a transcript, for writing cases:
// go test ./decode -run Dump -dump file.txt -v
func TestDump(t *testing.T) {
	if *dumpFile == "" {
		t.Skip("no -dump file")
	}
	src, err := os.ReadFile(*dumpFile)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := transcript.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", dump(run(decode.Options{}, steps)))
}
