// Package transcript reads and writes the human transcript form of a POP3
// session, the C:/S: notation of the RFC 1939 examples and of
// docs/pop3-rules.md, and replays it into a decoder.
//
// # Format
//
// A transcript is UTF-8 (or any bytes) text, one item per line. Lines of
// the file may end in LF or CRLF; the CR of a CRLF file is not part of
// the text. Leading spaces and tabs before an item are ignored, so
// indented RFC examples can be pasted as they are.
//
//	C: USER mrose          one line sent by the client: "USER mrose\r\n"
//	S: +OK mrose is real   one line sent by the server
//	C:                     an empty line: "\r\n"
//	# a comment            comments and blank lines are ignored
//	# at: +1.5s            directive: advance the clock by 1.5 s
//	# at: 3s               directive: set the clock to 3 s after the start
//	# close: server        directive: the server closes its direction
//	# close: client        directive: the client closes its direction
//
// "C:" and "S:" must be followed by one space and the text, or by nothing.
// Each C:/S: line is one Step: one chunk of bytes handed to the decoder in
// one Feed call. Consecutive lines are separate chunks, as if they came in
// separate reads.
//
// Escapes inside the text: \r (CR), \n (LF), \t (TAB), \xHH (any octet,
// two hex digits), \\ (a backslash). Any other backslash sequence is an
// error. Literal TABs and 8-bit octets are also taken as they are.
//
// Line terminators. By default CR LF is appended to the text. Two
// exceptions make the terminator explicit:
//
//   - If the text contains an escaped \n anywhere, it is taken verbatim
//     and nothing is appended. This is how the rules catalog shows line
//     ends "when they matter": "C: user alice\n" is a bare-LF line,
//     "C: STLS\r\nCAPA\r\n" is two lines in one write, "C: CA\rPA\r\n" is
//     one line with a bare CR inside.
//   - If the text ends in a single unescaped backslash, that backslash is
//     removed and nothing is appended: "S: +OK\r\" sends "+OK\r" (the LF
//     may follow in the next step), "C: RETR\" sends a partial line, and
//     "C: \" sends nothing at all. "\\" at the end is an escaped backslash
//     followed by the usual CR LF; "\\\" is a backslash without a
//     terminator.
//
// Trailing spaces are part of the text ("C: RETR 1 " sends a trailing
// SP); because editors strip them, Format writes a final space as \x20.
//
// Directives are comments of the form "# key: value" for the keys "at"
// and "close" (case-insensitive). Any other comment is ignored, so
// "# note: ..." is just a comment. A malformed value of a known key is an
// error. "at: +D" adds the Go duration D to the clock; "at: D" sets it to
// D after the start and may not move it backwards.
//
// # Usage
//
//	steps, err := transcript.Parse(src)
//	s := decode.New(decode.Options{Session: "t"}, emit)
//	end := transcript.Replay(steps, s, start)
//	s.Finish(end)
//
// Format writes steps back as text such that Parse(Format(steps))
// reproduces them (sides, bytes, clock and closes); a Recorder captures
// the Feed and Close calls of a live session as steps.
//
// # Concurrency
//
// Parse, Format and Replay are pure functions (Replay calls the Sink in
// the caller's goroutine). A Recorder is not safe for concurrent use, like
// the decoder session it usually wraps.
package transcript
