package record

import "encoding/binary"

// Base64 encoding of data records. encoding/base64 produces 4 characters
// per lookup of 6 bits; this encoder looks up 12 bits (two characters) at
// a time and handles 6 input bytes per step, about twice as fast, which
// matters because every relayed byte of a recorded session goes through
// it. The output is exactly base64.StdEncoding's (tested).

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

var b64Pairs = func() *[4096]uint16 {
	var t [4096]uint16
	for i := range t {
		t[i] = uint16(b64Alphabet[i>>6])<<8 | uint16(b64Alphabet[i&63])
	}
	return &t
}()

// appendBase64 appends the standard (padded) base64 encoding of src.
func appendBase64(dst, src []byte) []byte {
	n := (len(src) + 2) / 3 * 4
	off := len(dst)
	if cap(dst)-off < n {
		nd := make([]byte, off, off+n+n/4)
		copy(nd, dst)
		dst = nd
	}
	dst = dst[:off+n]
	out := dst[off:]
	p := b64Pairs
	i, j := 0, 0
	for ; len(src)-i >= 8 && len(out)-j >= 8; i, j = i+6, j+8 {
		v := binary.BigEndian.Uint64(src[i:])
		binary.BigEndian.PutUint64(out[j:], uint64(p[(v>>52)&0xFFF])<<48|uint64(p[(v>>40)&0xFFF])<<32|
			uint64(p[(v>>28)&0xFFF])<<16|uint64(p[(v>>16)&0xFFF]))
	}
	for ; len(src)-i >= 3; i, j = i+3, j+4 {
		v := uint32(src[i])<<16 | uint32(src[i+1])<<8 | uint32(src[i+2])
		binary.BigEndian.PutUint32(out[j:], uint32(p[v>>12])<<16|uint32(p[v&0xFFF]))
	}
	switch len(src) - i {
	case 1:
		v := uint32(src[i]) << 16
		out[j], out[j+1], out[j+2], out[j+3] = b64Alphabet[v>>18], b64Alphabet[(v>>12)&63], '=', '='
	case 2:
		v := uint32(src[i])<<16 | uint32(src[i+1])<<8
		out[j], out[j+1], out[j+2], out[j+3] = b64Alphabet[v>>18], b64Alphabet[(v>>12)&63], b64Alphabet[(v>>6)&63], '='
	}
	return dst
}
