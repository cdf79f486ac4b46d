package decode

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/popscope/popscope/decode/wire"
	"github.com/popscope/popscope/event"
)

// The per-session maildrop model (docs/pop3-rules.md §2.6): what this
// session learned about the maildrop, to judge the DROP and UIDL rules.
// Message numbers never change inside a session.

type maildrop struct {
	n        int // messages when the maildrop was opened; -1 unknown
	listed   map[int]int64
	uids     map[int]string
	deleted  map[int]bool
	restored map[int]bool // marked deleted, then RSET
	retr     map[int]*msgInfo
	gen      int // bumped by DELE/RSET +OK
	stat     *listingTotal
	list     *listingTotal
}

// listingTotal is a STAT reply or a LIST body, with the generation it was
// taken in.
type listingTotal struct {
	n    int
	size int64
	gen  int
}

// msgInfo is what a RETR delivered.
type msgInfo struct {
	octets      int64
	lines       int64
	headerLines int64
	bodyLines   int64
	separator   bool
	hash, hhash uint64
}

func newMaildrop() *maildrop {
	return &maildrop{n: -1, listed: map[int]int64{}, uids: map[int]string{}, deleted: map[int]bool{},
		restored: map[int]bool{}, retr: map[int]*msgInfo{}}
}

// msgArg returns the message number argument of x, or 0.
func msgArg(x *exchange) int {
	if len(x.cmd.Args) == 0 || !wire.IsDigits(x.cmd.Args[0]) {
		return 0
	}
	v, err := strconv.Atoi(x.cmd.Args[0])
	if err != nil {
		return 0
	}
	return v
}

// dropExec judges a +OK/-ERR when it starts, for commands naming a message
// (DROP-001/002/003/009).
func (s *Session) dropExec(at time.Time, x *exchange, ok bool, off int64) {
	md := s.drop
	if md == nil || s.state != Transaction {
		return
	}
	n := msgArg(x)
	switch x.verb {
	case "RETR", "TOP", "DELE", "LIST", "UIDL":
	default:
		return
	}
	if n == 0 {
		// msgArg gives 0 for non-digits too (SYNTAX-005); "0", "00" is a
		// message number that cannot exist.
		if a := x.cmd.Args; ok && len(a) > 0 && wire.IsDigits(a[0]) && strings.Trim(a[0], "0") == "" {
			s.violate(at, "POP3-DROP-001", event.Server, off, fmt.Sprintf("+OK to %s %s: message numbers start at 1", x.verb, a[0]), "")
		}
		return
	}
	if ok && md.n >= 0 && n > md.n {
		s.violate(at, "POP3-DROP-001", event.Server, off, fmt.Sprintf("+OK to %s %d but the maildrop has %d messages", x.verb, n, md.n), "")
		return
	}
	if ok && md.deleted[n] {
		if x.verb == "DELE" {
			s.violate(at, "POP3-DROP-003", event.Server, off, fmt.Sprintf("+OK to DELE %d, which is already marked deleted", n), "")
		} else {
			s.violate(at, "POP3-DROP-002", event.Server, off, fmt.Sprintf("+OK to %s %d, which is marked deleted", x.verb, n), "")
		}
	}
	if !ok && md.restored[n] && x.verb != "DELE" {
		s.violate(at, "POP3-DROP-009", event.Server, off, fmt.Sprintf("-ERR to %s %d after RSET restored it", x.verb, n), "")
	}
}

// dropSingle handles the single-line +OK replies that carry maildrop data
// (STAT, LIST n, UIDL n) and the DELE/RSET marks.
func (s *Session) dropSingle(at time.Time, x *exchange, st wire.Status, off int64) {
	md := s.drop
	if md == nil || s.state != Transaction || st.Indicator != wire.OK {
		return
	}
	switch x.verb {
	case "DELE":
		if n := msgArg(x); n > 0 {
			md.deleted[n] = true
			delete(md.restored, n)
			md.gen++
		}
	case "RSET":
		for n := range md.deleted {
			md.restored[n] = true
		}
		md.deleted = map[int]bool{}
		md.gen++
	case "STAT":
		f := strings.Fields(st.Text)
		if len(f) < 2 || !wire.IsDigits(f[0]) || !wire.IsDigits(f[1]) || !strings.HasPrefix(st.Text, f[0]+" "+f[1]) {
			s.violate(at, "POP3-SYNTAX-008", event.Server, off, "STAT reply is not \"+OK n size\": "+quoteShort([]byte(st.Text)), "")
			return
		}
		if len(f) > 2 {
			s.violate(at, "POP3-SYNTAX-008", event.Server, off, "extra words after the drop listing (allowed, strongly discouraged)", event.Info)
		}
		cnt, _ := strconv.Atoi(f[0])
		size, _ := strconv.ParseInt(f[1], 10, 64)
		s.statSeen(at, cnt, size, off)
	case "LIST", "UIDL":
		if len(x.cmd.Args) == 0 {
			return
		}
		want := msgArg(x)
		num, val, extra, ok := parseListing(st.Text)
		if !ok || num != want {
			what := "scan listing \"+OK n size\""
			if x.verb == "UIDL" {
				what = "unique-id listing \"+OK n uid\""
			}
			d := fmt.Sprintf("%s %d reply is not a %s for message %d: %s", x.verb, want, what, want, quoteShort([]byte(st.Text)))
			s.violate(at, "POP3-SYNTAX-008", event.Server, off, d, "")
			return
		}
		if x.verb == "LIST" {
			size, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				s.violate(at, "POP3-SYNTAX-008", event.Server, off, "LIST size is not a number: "+quoteShort([]byte(val)), "")
				return
			}
			if extra != "" {
				s.violate(at, "POP3-SYNTAX-008", event.Server, off, "extra words after the scan listing (allowed, strongly discouraged)", event.Info)
			}
			s.listedSize(at, num, size, off, true)
		} else {
			if extra != "" {
				s.violate(at, "POP3-SYNTAX-008", event.Server, off, "text after the unique-id: "+quoteShort([]byte(extra)), "")
			}
			s.uidSeen(at, num, val, off, nil)
		}
	}
}

func (s *Session) statSeen(at time.Time, cnt int, size int64, off int64) {
	md := s.drop
	ndel := len(md.deleted)
	if md.n < 0 && ndel == 0 {
		md.n = cnt
	}
	if md.n >= 0 {
		switch {
		case cnt+ndel > md.n && ndel > 0:
			s.violate(at, "POP3-DROP-004", event.Server, off, fmt.Sprintf("STAT counts %d messages but %d of %d are marked deleted", cnt, ndel, md.n), "")
		case cnt+ndel != md.n:
			if len(md.restored) > 0 && cnt+ndel < md.n {
				s.violate(at, "POP3-DROP-009", event.Server, off, fmt.Sprintf("after RSET, STAT shows %d messages, expected %d", cnt, md.n-ndel), "")
			} else {
				s.violate(at, "POP3-DROP-008", event.Server, off, fmt.Sprintf("STAT %d + %d deleted no longer equals the %d messages of the maildrop", cnt, ndel, md.n), "")
			}
		}
	}
	md.stat = &listingTotal{n: cnt, size: size, gen: md.gen}
	s.compareStatList(at, off)
}

// compareStatList: DROP-005, STAT and a LIST body of the same generation
// disagree.
func (s *Session) compareStatList(at time.Time, off int64) {
	md := s.drop
	if md.stat == nil || md.list == nil || md.stat.gen != md.list.gen || md.gen != md.stat.gen {
		return
	}
	st, li := md.stat, md.list
	if st.n != li.n {
		s.violate(at, "POP3-DROP-005", event.Server, off, fmt.Sprintf("STAT says %d messages, LIST lists %d", st.n, li.n), "")
	} else if st.size != li.size {
		var sev event.Severity
		d := fmt.Sprintf("STAT total %d octets, LIST sizes sum to %d", st.size, li.size)
		if s.utf8Mode {
			sev = event.Warning
			d += " (UTF-8 mode tolerates inexact STAT sizes)"
		}
		s.violate(at, "POP3-DROP-005", event.Server, off, d, sev)
	}
	md.stat, md.list = nil, nil // judge each pair once
}

// listedSize records a scan listing; single says it came from LIST n,
// whose +OK for a deleted message is DROP-002 (dropExec), not DROP-004.
func (s *Session) listedSize(at time.Time, n int, size int64, off int64, single bool) {
	md := s.drop
	if md.n >= 0 && n > md.n {
		s.violate(at, "POP3-DROP-008", event.Server, off, fmt.Sprintf("message %d listed, but the maildrop had %d messages when opened", n, md.n), "")
	}
	if md.deleted[n] && !single {
		s.violate(at, "POP3-DROP-004", event.Server, off, fmt.Sprintf("deleted message %d still listed", n), "")
	}
	if old, ok := md.listed[n]; ok && old != size {
		s.violate(at, "POP3-DROP-008", event.Server, off, fmt.Sprintf("message %d was listed as %d octets, now %d", n, old, size), "")
	}
	md.listed[n] = size
}

// uidSeen records a unique-id listing; in, if set, collects the ids of one
// UIDL body for the duplicate check (nil for UIDL n, whose +OK for a
// deleted message is DROP-002, not DROP-004).
func (s *Session) uidSeen(at time.Time, n int, uid string, off int64, in map[string]int) {
	md := s.drop
	if why := badUID(uid); why != "" {
		s.violate(at, "POP3-UIDL-001", event.Server, off, fmt.Sprintf("unique-id of message %d %s", n, why), "")
	}
	if md.n >= 0 && n > md.n {
		s.violate(at, "POP3-DROP-008", event.Server, off, fmt.Sprintf("message %d in a unique-id listing, but the maildrop had %d messages when opened", n, md.n), "")
	}
	if md.deleted[n] && in != nil {
		s.violate(at, "POP3-DROP-004", event.Server, off, fmt.Sprintf("deleted message %d still in the unique-id listing", n), "")
	}
	if old, ok := md.uids[n]; ok && old != uid {
		s.violate(at, "POP3-UIDL-003", event.Server, off, fmt.Sprintf("message %d had unique-id %q, now %q", n, old, uid), "")
	}
	if in != nil {
		if other, dup := in[uid]; dup {
			d := fmt.Sprintf("messages %d and %d share the unique-id %q", other, n, uid)
			if a, aok := md.listed[other]; aok {
				if b, bok := md.listed[n]; bok && a != b {
					d += fmt.Sprintf(" although their sizes differ (%d vs %d): a real collision", a, b)
				}
			}
			s.violate(at, "POP3-UIDL-002", event.Server, off, d, "")
		}
		in[uid] = n
	}
	md.uids[n] = uid
}

func badUID(uid string) string {
	switch {
	case uid == "":
		return "is empty"
	case len(uid) > wire.MaxUIDLen:
		return fmt.Sprintf("is %d characters (limit 70)", len(uid))
	}
	for i := 0; i < len(uid); i++ {
		if c := uid[i]; c < 0x21 || c > 0x7e {
			return fmt.Sprintf("contains octet 0x%02x (allowed 0x21-0x7E)", c)
		}
	}
	return ""
}

// listBodyLine parses one line of a LIST or UIDL body.
func (s *Session) listBodyLine(at time.Time, b *bodyState, c []byte, off int64) {
	if s.drop == nil {
		return
	}
	num, val, extra, ok := parseListing(string(c))
	if !ok {
		what := "scan listing \"n size\""
		if b.x.verb == "UIDL" {
			what = "unique-id listing \"n uid\""
		}
		s.violate(at, "POP3-SYNTAX-008", event.Server, off, b.x.verb+" body line is not a "+what+": "+quoteShort(c), "")
		b.listBad = true
		return
	}
	b.listCount++
	if b.x.verb == "LIST" {
		size, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			s.violate(at, "POP3-SYNTAX-008", event.Server, off, "LIST size is not a number: "+quoteShort(c), "")
			b.listBad = true
			return
		}
		if extra != "" {
			s.violate(at, "POP3-SYNTAX-008", event.Server, off, "extra words after the scan listing (allowed, strongly discouraged)", event.Info)
		}
		b.listTotal += size
		b.seen[num] = true
		s.listedSize(at, num, size, off, false)
		return
	}
	if extra != "" {
		s.violate(at, "POP3-SYNTAX-008", event.Server, off, "text after the unique-id: "+quoteShort(c), "")
	}
	b.seen[num] = true
	s.uidSeen(at, num, val, off, b.uidIndex)
}

// listBodyDone finishes a LIST or UIDL body.
func (s *Session) listBodyDone(at time.Time, b *bodyState, off int64) {
	md := s.drop
	if md == nil {
		return
	}
	if md.n < 0 && len(md.deleted) == 0 && !b.listBad {
		md.n = b.listCount
	}
	var missing []int
	for n := range md.restored {
		if !b.seen[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		sort.Ints(missing)
		s.violate(at, "POP3-DROP-009", event.Server, off, fmt.Sprintf("after RSET, %s omits restored messages %v", b.x.verb, missing), "")
	}
	if b.x.verb == "LIST" {
		if !b.listBad {
			md.list = &listingTotal{n: b.listCount, size: b.listTotal, gen: md.gen}
			s.compareStatList(at, off)
		}
	} else if s.store != nil {
		s.storeUIDListing(at, off)
	}
}

// messageDone judges a RETR or TOP body (DROP-006/007/010/011/012).
func (s *Session) messageDone(at time.Time, b *bodyState, off int64) {
	md := s.drop
	if md == nil {
		return
	}
	st := &b.scan.Stats
	n := msgArg(b.x)
	info := &msgInfo{octets: st.Octets, lines: st.Lines, headerLines: st.HeaderLines, separator: st.Separator,
		hash: st.BodyHash, hhash: st.HeaderHash}
	if st.Separator {
		info.bodyLines = st.Lines - st.HeaderLines
	}
	if b.x.verb == "RETR" {
		md.retr[n] = info
		if listed, ok := md.listed[n]; ok {
			s.checkDeliveredSize(at, b.x, n, listed, info, off)
		}
		if s.store != nil {
			s.storeRetrieved(at, n, info, off)
		}
		return
	}
	// TOP n k
	if len(b.x.cmd.Args) < 2 {
		return
	}
	k, err := strconv.ParseInt(b.x.cmd.Args[1], 10, 64)
	if err != nil {
		return
	}
	r := md.retr[n]
	if !st.Separator {
		d := fmt.Sprintf("TOP %d %d output has no empty line between header and body", n, k)
		if r != nil {
			if r.separator {
				d += "; RETR of it has one"
			} else {
				d += "; RETR of it has none either (header-only message in the store)"
			}
		}
		s.violate(at, "POP3-DROP-012", event.Server, off, d, "")
		return
	}
	if info.bodyLines > k {
		s.violate(at, "POP3-DROP-010", event.Server, off, fmt.Sprintf("TOP %d %d returned %d body lines", n, k, info.bodyLines), "")
		return
	}
	if info.bodyLines < k {
		switch {
		case r != nil && r.bodyLines > info.bodyLines:
			s.violate(at, "POP3-DROP-011", event.Server, off, fmt.Sprintf("TOP %d %d returned %d body lines; RETR showed %d", n, k, info.bodyLines, r.bodyLines), "")
			return
		case r == nil && md.listed[n] > info.octets+2 && md.listed[n] > 0:
			s.violate(at, "POP3-DROP-011", event.Server, off, fmt.Sprintf("TOP %d %d returned %d body lines and %d octets of a message listed as %d", n, k, info.bodyLines, info.octets, md.listed[n]), "")
			return
		}
	}
	if r != nil {
		if r.hhash != info.hhash {
			s.violate(at, "POP3-DROP-011", event.Server, off, fmt.Sprintf("TOP %d header differs from the RETR header", n), "")
		} else if k >= r.bodyLines && r.hash != info.hash {
			s.violate(at, "POP3-DROP-011", event.Server, off, fmt.Sprintf("TOP %d %d covers the whole message but differs from RETR", n, k), "")
		}
	}
}

func (s *Session) checkDeliveredSize(at time.Time, x *exchange, n int, listed int64, info *msgInfo, off int64) {
	got := info.octets
	if got == listed {
		return
	}
	if got == listed+2 {
		s.violate(at, "POP3-DROP-007", event.Server, off, fmt.Sprintf("RETR %d delivered %d octets, listed %d: the stored message had no final line break and the server added CRLF", n, got, listed), "")
		return
	}
	d := fmt.Sprintf("RETR %d delivered %d octets, LIST said %d (%+d)", n, got, listed, got-listed)
	switch {
	case listed == got-info.lines:
		d += "; the difference equals the line count: the server counts LF line ends"
	case listed%1024 == 0:
		d += "; the listed size is a multiple of 1024: rounded"
	}
	if f := strings.Fields(x.status.Text); len(f) >= 1 && wire.IsDigits(f[0]) {
		if v, _ := strconv.ParseInt(f[0], 10, 64); v != got {
			d += fmt.Sprintf("; the +OK text says %d", v)
		}
	}
	s.violate(at, "POP3-DROP-006", event.Server, off, d, "")
}
