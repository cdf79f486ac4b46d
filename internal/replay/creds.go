package replay

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/popscope/popscope/decode/wire"
)

// apopDigest is RFC 1939 §7: md5(timestamp + secret) in lower-case hex.
func apopDigest(ts, pass string) string {
	sum := md5.Sum([]byte(ts + pass))
	return hex.EncodeToString(sum[:])
}

// cramResponse is RFC 2195: user SP hex(hmac-md5(secret, challenge)).
func cramResponse(user, pass string, challenge []byte) string {
	m := hmac.New(md5.New, []byte(pass))
	m.Write(challenge)
	return user + " " + hex.EncodeToString(m.Sum(nil))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func plainResponse(user, pass string) string { return b64("\x00" + user + "\x00" + pass) }

// challengeText returns the decoded challenge of a "+ base64" line.
func challengeText(line []byte) []byte {
	st := wire.ParseStatus(trimEOL(line))
	d, err := base64.StdEncoding.DecodeString(strings.TrimSpace(st.Text))
	if err != nil {
		return nil
	}
	return d
}

// greetingTimestamp returns the APOP timestamp of a greeting line.
func greetingTimestamp(line []byte) string {
	st := wire.ParseStatus(trimEOL(line))
	ts, _ := wire.APOPTimestamp(st.Text)
	return ts
}

func equalString(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// checkSASL verifies a finished SASL exchange against user/pass: PLAIN,
// LOGIN and CRAM-MD5 are understood; for other mechanisms it returns
// ok=true, known=false. ir is the initial response ("" if none),
// challenges and responses the lines in order (responses without line
// ends).
func checkSASL(mech, ir string, challenges [][]byte, responses []string, user, pass string) (ok, known bool) {
	all := responses
	if ir != "" && ir != "=" {
		all = append([]string{ir}, responses...)
	}
	dec := func(s string) string {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return "\x00invalid"
		}
		return string(b)
	}
	switch strings.ToUpper(mech) {
	case "PLAIN":
		if len(all) == 0 {
			return false, true
		}
		f := strings.Split(dec(all[0]), "\x00")
		return len(f) == 3 && equalString(f[1], user) && equalString(f[2], pass), true
	case "LOGIN":
		if len(all) < 2 {
			return false, true
		}
		return equalString(dec(all[0]), user) && equalString(dec(all[1]), pass), true
	case "CRAM-MD5":
		if len(challenges) == 0 || len(all) == 0 {
			return false, true
		}
		want := cramResponse(user, pass, challengeText(challenges[0]))
		return equalString(dec(all[0]), want), true
	}
	return true, false
}

// sameLine compares two client lines without their line ends.
func sameLine(a, b []byte) bool {
	return subtle.ConstantTimeCompare(bytes.TrimRight(a, "\r\n"), bytes.TrimRight(b, "\r\n")) == 1
}
