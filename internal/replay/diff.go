package replay

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// uidMaps maps message numbers to unique-ids, as the UIDL replies of the
// recorded and of the live session showed them.
type uidMaps struct{ rec, live map[int]string }

func (u *uidMaps) learn(m map[int]string, verb string, args []string, r *Reply) {
	if verb != "UIDL" || r.Status != "+OK" {
		return
	}
	if len(args) == 0 {
		for _, l := range r.Lines {
			if n, v, ok := numAndValue(l); ok {
				m[n] = v
			}
		}
		return
	}
	if n, v, ok := numAndValue(r.Text); ok {
		m[n] = v
	}
}

func numAndValue(s string) (int, string, bool) {
	f := strings.Fields(s)
	if len(f) < 2 {
		return 0, "", false
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, "", false
	}
	return n, f[1], true
}

// compareReply returns what differs between the recorded and the live
// reply to x, in human sentences; nothing for equal replies. What
// legitimately varies is ignored: free text after +OK or -ERR (except
// where RFC 1939 gives it structure: STAT, LIST n, UIDL n), the text of
// RETR/TOP status lines (the content is compared instead).
func compareReply(verb string, args []string, a, b *Reply, u *uidMaps) []string {
	if a.Status != b.Status {
		d := fmt.Sprintf("status %s → %s", a.describe(), b.describe())
		if b.Status == "-ERR" && b.Text != "" {
			d += fmt.Sprintf(" (%q)", b.Text)
		}
		return []string{d}
	}
	var out []string
	if a.Code != b.Code {
		out = append(out, fmt.Sprintf("response code %s → %s", codeText(a.Code), codeText(b.Code)))
	}
	if a.Status != "+OK" {
		return out
	}
	switch verb {
	case "STAT":
		out = append(out, compareStat(a.Text, b.Text)...)
	case "LIST":
		if len(args) == 0 {
			out = append(out, compareListing(a.Lines, b.Lines, u, "octets")...)
		} else {
			out = append(out, compareScan(a.Text, b.Text, "size")...)
		}
	case "UIDL":
		if len(args) == 0 {
			out = append(out, compareUIDL(a.Lines, b.Lines)...)
		} else {
			out = append(out, compareScan(a.Text, b.Text, "unique-id")...)
		}
	case "CAPA":
		out = append(out, compareSets("capability", normCapa(a.Lines), normCapa(b.Lines))...)
	case "AUTH", "LANG":
		if len(args) == 0 {
			out = append(out, compareSets("entry", a.Lines, b.Lines)...)
		}
	case "RETR", "TOP":
		if a.Hash != b.Hash || a.Octets != b.Octets || a.BodyLines != b.BodyLines || a.Unterminated != b.Unterminated {
			d := fmt.Sprintf("content differs: %d octets in %d lines → %d octets in %d lines", a.Octets, a.BodyLines, b.Octets, b.BodyLines)
			if b.Unterminated {
				d += " (live body not terminated)"
			}
			if len(args) > 0 {
				if n, err := strconv.Atoi(args[0]); err == nil {
					ru, lu := u.rec[n], u.live[n]
					switch {
					case ru != "" && lu != "" && ru != lu:
						d += fmt.Sprintf("; a different message: recorded unique-id %s, live %s", ru, lu)
						if m := findUID(u.live, ru); m > 0 {
							d += fmt.Sprintf(" (%s is now message %d)", ru, m)
						}
					case ru != "" && ru == lu:
						d += "; same unique-id " + ru
					}
				}
			}
			out = append(out, d)
		}
	}
	return out
}

func findUID(m map[int]string, uid string) int {
	for n, v := range m {
		if v == uid {
			return n
		}
	}
	return 0
}

func codeText(c string) string {
	if c == "" {
		return "none"
	}
	return "[" + c + "]"
}

func compareStat(a, b string) []string {
	af, bf := strings.Fields(a), strings.Fields(b)
	if len(af) < 2 || len(bf) < 2 {
		if strings.Join(af, " ") != strings.Join(bf, " ") {
			return []string{fmt.Sprintf("drop listing %q → %q", a, b)}
		}
		return nil
	}
	var out []string
	if af[0] != bf[0] {
		out = append(out, fmt.Sprintf("messages %s → %s", af[0], bf[0]))
	}
	if af[1] != bf[1] {
		out = append(out, fmt.Sprintf("maildrop size %s → %s octets", af[1], bf[1]))
	}
	return out
}

// compareScan compares "n value" of LIST n / UIDL n.
func compareScan(a, b, what string) []string {
	an, av, aok := numAndValue(a)
	bn, bv, bok := numAndValue(b)
	if !aok || !bok {
		if strings.TrimSpace(a) != strings.TrimSpace(b) {
			return []string{fmt.Sprintf("%q → %q", a, b)}
		}
		return nil
	}
	if an != bn {
		return []string{fmt.Sprintf("message number %d → %d", an, bn)}
	}
	if av != bv {
		return []string{fmt.Sprintf("message %d: %s %s → %s", an, what, av, bv)}
	}
	return nil
}

type entry struct {
	n int
	v string
}

func parseListing(lines []string) []entry {
	var es []entry
	for _, l := range lines {
		if n, v, ok := numAndValue(l); ok {
			es = append(es, entry{n, v})
		}
	}
	return es
}

// compareUIDL reports messages added and removed by unique-id (unique-ids
// are unique, so a set difference is exact) and how many kept their
// unique-id under a new number.
func compareUIDL(a, b []string) []string {
	ae, be := parseListing(a), parseListing(b)
	an, bn := map[string]int{}, map[string]int{}
	for _, e := range ae {
		an[e.v] = e.n
	}
	for _, e := range be {
		bn[e.v] = e.n
	}
	var out []string
	renumbered := 0
	for _, e := range ae {
		if m, ok := bn[e.v]; !ok {
			out = append(out, fmt.Sprintf("message %d removed (unique-id %s)", e.n, e.v))
		} else if m != e.n {
			renumbered++
		}
	}
	for _, e := range be {
		if _, ok := an[e.v]; !ok {
			out = append(out, fmt.Sprintf("message %d added (unique-id %s)", e.n, e.v))
		}
	}
	if renumbered > 0 {
		out = append(out, fmt.Sprintf("%d messages kept their unique-id under a new number", renumbered))
	}
	return out
}

// compareListing compares LIST listings. With unique-ids known for both
// sessions, messages are matched by unique-id; otherwise the sizes are
// aligned as sequences (longest common subsequence), so that one
// message added or removed shows as exactly that.
func compareListing(a, b []string, u *uidMaps, unit string) []string {
	ae, be := parseListing(a), parseListing(b)
	if len(u.rec) > 0 && len(u.live) > 0 && coversAll(ae, u.rec) && coversAll(be, u.live) {
		var out []string
		bm := map[string]entry{}
		for _, e := range be {
			bm[u.live[e.n]] = e
		}
		seen := map[string]bool{}
		for _, e := range ae {
			uid := u.rec[e.n]
			seen[uid] = true
			f, ok := bm[uid]
			switch {
			case !ok:
				out = append(out, fmt.Sprintf("message %d removed (%s %s, unique-id %s)", e.n, e.v, unit, uid))
			case f.v != e.v:
				out = append(out, fmt.Sprintf("message %d (unique-id %s): %s → %s %s", e.n, uid, e.v, f.v, unit))
			}
		}
		for _, e := range be {
			if uid := u.live[e.n]; !seen[uid] {
				out = append(out, fmt.Sprintf("message %d added (%s %s, unique-id %s)", e.n, e.v, unit, uid))
			}
		}
		return out
	}
	keep := lcs(ae, be)
	var out []string
	i, j := 0, 0
	for _, k := range append(keep, [2]int{len(ae), len(be)}) {
		for ; i < k[0]; i++ {
			out = append(out, fmt.Sprintf("message %d removed (%s %s)", ae[i].n, ae[i].v, unit))
		}
		for ; j < k[1]; j++ {
			out = append(out, fmt.Sprintf("message %d added (%s %s)", be[j].n, be[j].v, unit))
		}
		i, j = k[0]+1, k[1]+1
	}
	return out
}

func coversAll(es []entry, m map[int]string) bool {
	for _, e := range es {
		if m[e.n] == "" {
			return false
		}
	}
	return true
}

// lcs returns index pairs of a longest common subsequence of the values
// of a and b. Large inputs (over 4M cells) are matched position by
// position instead.
func lcs(a, b []entry) [][2]int {
	n, m := len(a), len(b)
	if n*m > 4<<20 {
		var out [][2]int
		for i := 0; i < min(n, m); i++ {
			if a[i].v == b[i].v {
				out = append(out, [2]int{i, i})
			}
		}
		return out
	}
	// dp[i][j] = LCS length of a[i:], b[j:]
	dp := make([][]int32, n+1)
	for i := range dp {
		dp[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i].v == b[j].v {
				dp[i][j] = dp[i+1][j+1] + 1
			} else {
				dp[i][j] = max(dp[i+1][j], dp[i][j+1])
			}
		}
	}
	var out [][2]int
	for i, j := 0, 0; i < n && j < m; {
		switch {
		case a[i].v == b[j].v:
			out = append(out, [2]int{i, j})
			i++
			j++
		case dp[i+1][j] >= dp[i][j+1]:
			i++
		default:
			j++
		}
	}
	return out
}

// normCapa normalises capability lines: keyword upper case, arguments
// single-spaced.
func normCapa(lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		f[0] = strings.ToUpper(f[0])
		if f[0] == "SASL" {
			rest := f[1:]
			sort.Strings(rest)
		}
		out = append(out, strings.Join(f, " "))
	}
	return out
}

// compareSets reports lines only in a or only in b.
func compareSets(what string, a, b []string) []string {
	am, bm := map[string]bool{}, map[string]bool{}
	for _, s := range a {
		am[s] = true
	}
	for _, s := range b {
		bm[s] = true
	}
	var out []string
	for _, s := range a {
		if !bm[s] {
			out = append(out, fmt.Sprintf("%s %q removed", what, s))
		}
	}
	for _, s := range b {
		if !am[s] {
			out = append(out, fmt.Sprintf("%s %q added", what, s))
		}
	}
	return out
}
