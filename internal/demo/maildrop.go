// Package demo is what `popscope demo` serves and runs: a sample maildrop
// for the embedded POP3 server (package pop3server) and a scripted POP3
// client that walks through a realistic session, verifies every reply,
// and then, clearly labelled, misbehaves so that the debugger has
// something to find.
//
// # Usage
//
//	srv := pop3server.New(demo.ServerConfig())
//	go srv.Serve(ctx, ln)
//	err := demo.Script(ctx, "127.0.0.1:1110", os.Stdout)
//
// # Concurrency
//
// Messages and ServerConfig return fresh values on every call. Script
// uses one connection at a time and may run concurrently with other
// Script calls against the same server (the demo server does not keep
// deletions, so sessions do not disturb each other).
package demo

import (
	"fmt"
	"strings"

	"github.com/popscope/popscope/internal/pop3server"
)

// Demo credentials.
const (
	User     = "demo"
	Password = "demo"
)

// Implementation is what the demo server announces in CAPA after login.
const Implementation = "popscope-demo-server"

// ServerConfig returns the configuration of the demo server: user demo
// with password demo, the sample maildrop, APOP enabled, deletions kept
// per session only.
func ServerConfig() pop3server.Config {
	return pop3server.Config{
		Users:          map[string]string{User: Password},
		Messages:       Messages(),
		Hostname:       "popscope.demo",
		APOP:           true,
		Implementation: Implementation,
	}
}

// Messages returns the sample maildrop, in message-number order:
//
//  1. a short plain-text message;
//  2. lines that need dot-stuffing (".", "..", ".x", "...", ". ");
//  3. an 8-bit UTF-8 body (Content-Transfer-Encoding: 8bit);
//  4. a multipart/mixed message with a small base64 attachment;
//  5. a message of about 64 KiB;
//  6. a message whose stored form has no final line break (and LF line
//     ends), which the server completes with CRLF.
func Messages() []pop3server.Message {
	return []pop3server.Message{
		{Data: []byte(crlf(msgPlain))},
		{Data: []byte(crlf(msgDots))},
		{Data: []byte(crlf(msgUTF8))},
		{Data: []byte(crlf(msgMIME))},
		{Data: bigMessage()},
		{Data: []byte(msgNoFinalNewline)}, // LF line ends, stored as is
	}
}

// crlf turns the LF-only literals below into CRLF text.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

const msgPlain = `Return-Path: <alice@example.org>
From: Alice Example <alice@example.org>
To: Demo User <demo@popscope.demo>
Subject: Welcome to popscope
Date: Mon, 02 Jun 2025 09:00:00 +0000
Message-ID: <welcome.1@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Hello,

this is the popscope demo maildrop. Every byte you fetch from it
passes through the proxy, which decodes the POP3 conversation and
reports commands, replies and rule violations as they happen.

Try RETR, TOP, LIST and UIDL, and watch the transcript.

--
Alice
`

// msgDots is spelled out line by line so that the ". " line keeps its
// trailing space whatever an editor does to trailing blanks.
const msgDots = "From: Bob Example <bob@example.org>\n" +
	"To: Demo User <demo@popscope.demo>\n" +
	"Subject: Lines that start with a dot\n" +
	"Date: Mon, 02 Jun 2025 09:05:00 +0000\n" +
	"Message-ID: <dots.2@example.org>\n" +
	"MIME-Version: 1.0\n" +
	"Content-Type: text/plain; charset=us-ascii\n" +
	"\n" +
	"The next lines start with dots. On the wire the server doubles the\n" +
	"first dot of each (dot-stuffing, RFC 1939 section 3) and the client\n" +
	"removes it again.\n" +
	".\n" +
	"..\n" +
	".x\n" +
	"...\n" +
	". \n" +
	"The line above is a dot followed by one space.\n" +
	".end of the message is not here\n"

const msgUTF8 = `From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.org>
To: Demo User <demo@popscope.demo>
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=
Date: Mon, 02 Jun 2025 09:10:00 +0000
Message-ID: <utf8.3@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Grüße aus Köln! This body is raw 8-bit UTF-8, as 8BITMIME allows.
Ελληνικά, русский, 日本語, emoji: ☕ 📬
The header above is pure ASCII: its non-ASCII words are RFC 2047
encoded words.
`

const msgMIME = `From: Carol Example <carol@example.org>
To: Demo User <demo@popscope.demo>
Subject: Report with an attachment
Date: Mon, 02 Jun 2025 09:15:00 +0000
Message-ID: <mime.4@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="=_popscope_demo_boundary"

This is a multi-part message in MIME format.

--=_popscope_demo_boundary
Content-Type: text/plain; charset=us-ascii

Hi, the numbers are attached as CSV.

--=_popscope_demo_boundary
Content-Type: text/csv; name="numbers.csv"
Content-Disposition: attachment; filename="numbers.csv"
Content-Transfer-Encoding: base64

bW9udGgsbWVzc2FnZXMsb2N0ZXRzCmphbnVhcnksMTIsMzQ1NjcKZmVicnVhcnksOSwyMTA5
OAptYXJjaCwxNSw0MDk2MQo=

--=_popscope_demo_boundary--
`

const msgNoFinalNewline = "From: Dave Example <dave@example.org>\n" +
	"To: Demo User <demo@popscope.demo>\n" +
	"Subject: No newline at the end\n" +
	"Date: Mon, 02 Jun 2025 09:25:00 +0000\n" +
	"Message-ID: <nonl.6@example.org>\n" +
	"\n" +
	"This message is stored with bare LF line ends and without a final\n" +
	"line break. The server sends CRLF line ends, adds the missing CRLF\n" +
	"before the terminator, and counts it in LIST, so sizes agree."

// bigMessage is a plain-text message of about 64 KiB with numbered lines
// of at most 78 octets, so that no line-length rule is involved.
func bigMessage() []byte {
	var b strings.Builder
	b.WriteString(crlf(`From: Eve Example <eve@example.org>
To: Demo User <demo@popscope.demo>
Subject: A larger message (about 64 KiB)
Date: Mon, 02 Jun 2025 09:20:00 +0000
Message-ID: <big.5@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

`))
	const words = "the quick brown fox jumps over the lazy dog while popscope watches"
	for i := 1; b.Len() < 64<<10; i++ {
		fmt.Fprintf(&b, "%05d %s\r\n", i, words)
	}
	return []byte(b.String())
}
