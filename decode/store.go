package decode

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/popscope/popscope/event"
)

// Store is the cross-session memory of docs/pop3-rules.md §2.7, shared by
// all sessions of a proxy (or of one `check` run): APOP timestamps per
// endpoint, and per mailbox (endpoint + identity) what earlier sessions
// saw and did. It is in memory and bounded; it is safe for concurrent use.
// The zero value is not usable: call NewStore.
type Store struct {
	mu        sync.Mutex
	maxBoxes  int
	maxUIDs   int
	maxStamps int
	stamps    map[string]*stampSet
	boxes     map[string]*mailbox
}

// NewStore returns an empty store keeping at most maxBoxes mailboxes
// (least recently used evicted), maxUIDs unique-ids per mailbox and
// maxStamps greeting timestamps per endpoint. Zero values pick defaults
// (10,000 / 100,000 / 100,000).
func NewStore(maxBoxes, maxUIDs, maxStamps int) *Store {
	if maxBoxes <= 0 {
		maxBoxes = 10000
	}
	if maxUIDs <= 0 {
		maxUIDs = 100000
	}
	if maxStamps <= 0 {
		maxStamps = 100000
	}
	return &Store{maxBoxes: maxBoxes, maxUIDs: maxUIDs, maxStamps: maxStamps,
		stamps: map[string]*stampSet{}, boxes: map[string]*mailbox{}}
}

type stampSet struct {
	seen  map[string]bool
	order []string
}

// mailbox is what the store remembers of one (endpoint, identity).
type mailbox struct {
	lastUsed   time.Time
	uids       map[string]uidRecord
	byHash     map[uint64]string
	lastLogin  time.Time
	loginDelay int64 // seconds; -1 unknown
	// loginDelayTrans: loginDelay came from a TRANSACTION-state CAPA, the
	// per-user value in force (RFC 2449 §6.5); an AUTHORIZATION value is
	// only the worst case over all users.
	loginDelayTrans bool
	expire          int64 // days; -1 unknown, never = NEVER
	open            int   // sessions in TRANSACTION now
	// What the last finished session left behind.
	prev *sessionSummary
}

type uidRecord struct {
	size    int64
	hash    uint64
	hasHash bool
}

// sessionSummary is what one session did to a mailbox.
type sessionSummary struct {
	listed    map[string]bool // UIDs in its last full UIDL listing (nil: none)
	retrieved map[string]bool
	deleted   map[string]bool // UIDs marked deleted at the end
	quitOK    bool            // ended with QUIT +OK in TRANSACTION
	quitErr   bool
	expire    int64
}

func (st *Store) box(key string, now time.Time) *mailbox {
	b := st.boxes[key]
	if b == nil {
		if len(st.boxes) >= st.maxBoxes {
			st.evictOldest()
		}
		b = &mailbox{uids: map[string]uidRecord{}, byHash: map[uint64]string{}, loginDelay: -1, expire: -1}
		st.boxes[key] = b
	}
	b.lastUsed = now
	return b
}

func (st *Store) evictOldest() {
	var oldest string
	var t time.Time
	for k, b := range st.boxes {
		if oldest == "" || b.lastUsed.Before(t) {
			oldest, t = k, b.lastUsed
		}
	}
	delete(st.boxes, oldest)
}

// seenStamp records an APOP timestamp and reports whether it was seen
// before on that endpoint.
func (st *Store) seenStamp(endpoint, ts string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	set := st.stamps[endpoint]
	if set == nil {
		set = &stampSet{seen: map[string]bool{}}
		st.stamps[endpoint] = set
	}
	if set.seen[ts] {
		return true
	}
	if len(set.order) >= st.maxStamps {
		delete(set.seen, set.order[0])
		set.order = set.order[1:]
	}
	set.seen[ts] = true
	set.order = append(set.order, ts)
	return false
}

// ---- session side ----

// boxKey is the store key of this session's mailbox, or "" if unknown.
func (s *Session) boxKey() string {
	if s.store == nil || s.user == "" {
		return ""
	}
	return s.opt.Endpoint + "\x00" + s.user
}

// storeLogin is called when a login attempt is answered (EXT-001/002,
// SESS-003).
func (s *Session) storeLogin(at time.Time, x *exchange, ok bool, code string, off int64) {
	key := s.boxKey()
	if key == "" {
		return
	}
	st := s.store
	st.mu.Lock()
	b := st.box(key, at)
	last, delay, transDelay := b.lastLogin, b.loginDelay, b.loginDelayTrans
	openOthers := b.open
	if ok {
		b.lastLogin = at
		b.open++
		s.boxOpen = true
	}
	st.mu.Unlock()
	// The value in force: a TRANSACTION value seen for this mailbox, else
	// this session's AUTHORIZATION value, else an earlier one.
	if c := s.caps; c.has("LOGIN-DELAY") && (c.trans || !transDelay) {
		if v, okv := capNumber(c.get("LOGIN-DELAY")); okv {
			delay = v
		}
	}
	if delay > 0 && !last.IsZero() && at.Sub(last) < time.Duration(delay)*time.Second {
		gap := at.Sub(last).Round(time.Second)
		refused := ""
		if !ok && strings.EqualFold(code, "LOGIN-DELAY") {
			refused = "; the server refused it with [LOGIN-DELAY]"
		}
		s.violate(at, "POP3-EXT-002", event.Client, x.offset, fmt.Sprintf("login for %s %v after the previous successful one; LOGIN-DELAY is %d s%s", s.user, gap, delay, refused), "")
		if ok {
			s.violate(at, "POP3-EXT-001", event.Server, off, fmt.Sprintf("server accepted a login %v after the previous one although it advertises LOGIN-DELAY %d", gap, delay), "")
		}
	}
	if ok && openOthers > 0 {
		s.violate(at, "POP3-SESS-003", event.Server, off, fmt.Sprintf("%d other session(s) for %s are in TRANSACTION at the same time (no exclusive lock)", openOthers, s.user), "")
	}
	if !ok && strings.EqualFold(code, "IN-USE") && openOthers == 0 {
		s.violate(at, "POP3-SESS-003", event.Server, off, "[IN-USE] although popscope sees no other open session for "+s.user+" (stale lock, or access through another path)", "")
	}
}

// storeUIDListing compares a full UIDL listing with earlier sessions
// (SESS-001, SESS-002, EXT-003) the first time one is seen.
func (s *Session) storeUIDListing(at time.Time, off int64) {
	key := s.boxKey()
	if key == "" || s.drop == nil {
		return
	}
	now := map[string]bool{}
	for _, u := range s.drop.uids {
		now[u] = true
	}
	first := s.listedUIDs == nil
	s.listedUIDs = now
	if !first {
		return
	}
	st := s.store
	st.mu.Lock()
	b := st.box(key, at)
	prev := b.prev
	for u := range now {
		if _, ok := b.uids[u]; !ok && len(b.uids) < st.maxUIDs {
			b.uids[u] = uidRecord{}
		}
	}
	st.mu.Unlock()
	if prev == nil {
		return
	}
	var stillThere, goneAborted, vanished []string
	for u := range prev.deleted {
		switch {
		case now[u] && prev.quitOK:
			stillThere = append(stillThere, u)
		case !now[u] && !prev.quitOK && !prev.quitErr:
			if !(prev.expire == 0 && prev.retrieved[u]) {
				goneAborted = append(goneAborted, u)
			}
		}
	}
	for u := range prev.listed {
		// Messages the previous session deleted are judged above.
		if !now[u] && !prev.deleted[u] {
			vanished = append(vanished, u)
		}
	}
	if len(stillThere) > 0 {
		sort.Strings(stillThere)
		s.violate(at, "POP3-SESS-001", event.Server, off, fmt.Sprintf("deleted (DELE + QUIT +OK) in the previous session but still listed: %s", listUIDs(stillThere)), "")
	}
	if len(goneAborted) > 0 {
		sort.Strings(goneAborted)
		s.violate(at, "POP3-SESS-002", event.Server, off, fmt.Sprintf("marked deleted in a session that ended without UPDATE, yet gone now: %s", listUIDs(goneAborted)), "")
	}
	if len(vanished) > 0 {
		sort.Strings(vanished)
		d := fmt.Sprintf("gone since the previous session without DELE+QUIT: %s", listUIDs(vanished))
		allRetrieved := true
		for _, u := range vanished {
			if !prev.retrieved[u] {
				allRetrieved = false
			}
		}
		switch {
		case prev.expire == 0 && allRetrieved:
			d += " (retrieved with EXPIRE 0 advertised: allowed)"
		case prev.expire < 0:
			d += " (no EXPIRE advertised: site policy, should be announced with EXPIRE)"
		case prev.expire == never:
			d += " (EXPIRE NEVER was advertised; another access path such as IMAP or webmail may have deleted them)"
		}
		s.violate(at, "POP3-EXT-003", event.Server, off, d, "")
	}
}

func listUIDs(u []string) string {
	if len(u) > 5 {
		return strings.Join(u[:5], ", ") + fmt.Sprintf(" and %d more", len(u)-5)
	}
	return strings.Join(u, ", ")
}

// storeRetrieved compares a retrieved message with earlier sessions
// (UIDL-004).
func (s *Session) storeRetrieved(at time.Time, n int, info *msgInfo, off int64) {
	key := s.boxKey()
	uid, ok := s.drop.uids[n]
	if key == "" || !ok {
		return
	}
	if s.retrievedUIDs == nil {
		s.retrievedUIDs = map[string]bool{}
	}
	s.retrievedUIDs[uid] = true
	st := s.store
	st.mu.Lock()
	b := st.box(key, at)
	rec, known := b.uids[uid]
	other, hashKnown := b.byHash[info.hash]
	if !known || !rec.hasHash {
		if len(b.uids) < st.maxUIDs {
			b.uids[uid] = uidRecord{size: info.octets, hash: info.hash, hasHash: true}
			b.byHash[info.hash] = uid
		}
	}
	st.mu.Unlock()
	if hashKnown && other != uid {
		s.violate(at, "POP3-UIDL-004", event.Server, off, fmt.Sprintf("message %d has the content of unique-id %q seen earlier, but now its unique-id is %q", n, other, uid), "")
	}
	if known && rec.hasHash && rec.hash != info.hash && rec.size+2 != info.octets && rec.size != info.octets+2 {
		s.violate(at, "POP3-UIDL-004", event.Server, off, fmt.Sprintf("unique-id %q now denotes different content (%d octets, was %d): reuse", uid, info.octets, rec.size), event.Warning)
	}
}

// storeEnd records what this session did, for the next one.
func (s *Session) storeEnd(at time.Time) {
	key := s.boxKey()
	if key == "" || s.drop == nil {
		return
	}
	sum := &sessionSummary{listed: s.listedUIDs, retrieved: s.retrievedUIDs, deleted: map[string]bool{},
		quitOK: s.quitOK && s.quitInTrans, quitErr: s.quitAnswered && !s.quitOK && s.quitInTrans, expire: -1}
	for n := range s.drop.deleted {
		if u, ok := s.drop.uids[n]; ok {
			sum.deleted[u] = true
		}
	}
	if e := s.caps.get("EXPIRE"); e != "" {
		if v, ok := capNumber(e); ok {
			sum.expire = v
		}
	}
	st := s.store
	st.mu.Lock()
	b := st.box(key, at)
	if s.boxOpen && b.open > 0 {
		b.open--
		s.boxOpen = false
	}
	if c := s.caps; c.has("LOGIN-DELAY") && (c.trans || !b.loginDelayTrans) {
		if v, ok := capNumber(c.get("LOGIN-DELAY")); ok {
			b.loginDelay, b.loginDelayTrans = v, c.trans
		}
	}
	b.expire = sum.expire
	// Keep the listing only if this session listed UIDs; otherwise carry
	// the previous listing forward minus nothing (we learned nothing).
	if sum.listed == nil && b.prev != nil {
		sum.listed = b.prev.listed
	}
	b.prev = sum
	st.mu.Unlock()
}

// leaveBox marks this session as no longer in TRANSACTION for SESS-003, as
// soon as that is known (QUIT answered, or a side closed): the next
// session of the same client may log in before this one has finished.
func (s *Session) leaveBox(at time.Time) {
	if !s.boxOpen || s.store == nil {
		return
	}
	key := s.boxKey()
	st := s.store
	st.mu.Lock()
	if b := st.boxes[key]; b != nil && b.open > 0 {
		b.open--
	}
	st.mu.Unlock()
	s.boxOpen = false
}
