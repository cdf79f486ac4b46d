// Package pop3server is a small POP3 server over an in-memory maildrop. It
// backs `popscope demo`, the benchmarks, and is meant for `popscope replay
// server`. It aims to be correct first, so that a debugger watching it
// finds nothing to report, and fast: every message is converted once to
// its dot-stuffed CRLF wire form, and RETR writes that form with large
// writes straight from memory.
//
// Protocol coverage: RFC 1939 (USER/PASS, APOP, STAT, LIST, UIDL, RETR,
// TOP, DELE, RSET, NOOP, QUIT, with the AUTHORIZATION, TRANSACTION and
// UPDATE states), RFC 2449 (CAPA, RESP-CODES, PIPELINING,
// IMPLEMENTATION), RFC 3206 (AUTH-RESP-CODE, SYS/PERM), RFC 5034 and
// RFC 4616 (AUTH PLAIN, with or without initial response). There is no
// TLS: STLS is neither offered nor accepted.
//
// Choices worth knowing:
//   - CAPA lists the same capabilities in both states (RFC 2449 §5),
//     plus IMPLEMENTATION in TRANSACTION if configured.
//   - LIST and STAT report exact sizes of the CRLF form the client
//     receives (RFC 1939 §11), including the CRLF added to a message that
//     lacks a final line break.
//   - UIDs are the first 12 bytes of the SHA-256 of the message, in hex,
//     unless Message.UID is set; duplicates within a maildrop get a
//     "-2", "-3" suffix.
//   - "[AUTH]" marks only credential failures; protocol errors during
//     login carry no code, as AUTH-RESP-CODE promises (RFC 3206 §5).
//   - Deletions last for the session unless Config.PersistentDeletes is
//     set; in that default mode a QUIT after DELE answers
//     "-ERR [SYS/PERM] ... not removed", the reply RFC 1939 §6 defines
//     for an UPDATE that did not remove everything.
//   - Any command other than PASS after USER cancels the USER.
//   - A command line longer than Config.MaxLine (1 KiB by default) gets
//     "-ERR line too long" and the connection is closed; an idle client
//     is disconnected without a reply after Config.IdleTimeout (10 min).
//
// # Usage
//
//	srv := pop3server.New(pop3server.Config{
//		Users:    map[string]string{"demo": "demo"},
//		Messages: []pop3server.Message{{Data: []byte("Subject: hi\r\n\r\nhello\r\n")}},
//		APOP:     true,
//	})
//	ln, _ := net.Listen("tcp", "127.0.0.1:0")
//	go srv.Serve(ctx, ln) // returns when ctx ends
//
// # Concurrency
//
// A Server may serve any number of connections at once; each runs in its
// own goroutine and reads its commands through its own buffer. Within a
// connection, commands are answered strictly in order, and replies are
// flushed only when no further complete command is buffered, so a
// pipelined batch is answered with few writes. Each user's maildrop is
// shared by that user's sessions: a session takes a snapshot of the
// message list at login (message numbers never change during a session),
// and with PersistentDeletes a QUIT removes its deleted messages from the
// shared list under a lock. Prepared messages are immutable and shared
// by all sessions without copying. Config must not be changed after New.
package pop3server
