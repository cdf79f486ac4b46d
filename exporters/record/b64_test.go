package record

import (
	"bytes"
	"encoding/base64"
	"math/rand"
	"testing"
)

func TestAppendBase64(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for n := 0; n < 300; n++ {
		src := make([]byte, n)
		rng.Read(src)
		for pre := 0; pre < 3; pre++ {
			got := appendBase64(bytes.Repeat([]byte("x"), pre), src)
			want := base64.StdEncoding.AppendEncode(bytes.Repeat([]byte("x"), pre), src)
			if !bytes.Equal(got, want) {
				t.Fatalf("len %d prefix %d:\n got %q\nwant %q", n, pre, got, want)
			}
		}
	}
}

func FuzzAppendBase64(f *testing.F) {
	f.Add([]byte("hello, world"))
	f.Fuzz(func(t *testing.T, src []byte) {
		if got, want := appendBase64(nil, src), base64.StdEncoding.AppendEncode(nil, src); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %q want %q", src, got, want)
		}
	})
}

func BenchmarkAppendBase64(b *testing.B) {
	src := make([]byte, 256<<10)
	dst := make([]byte, 0, base64.StdEncoding.EncodedLen(len(src)))
	b.SetBytes(int64(len(src)))
	for i := 0; i < b.N; i++ {
		dst = appendBase64(dst[:0], src)
	}
}

func BenchmarkStdBase64(b *testing.B) {
	src := make([]byte, 256<<10)
	dst := make([]byte, 0, base64.StdEncoding.EncodedLen(len(src)))
	b.SetBytes(int64(len(src)))
	for i := 0; i < b.N; i++ {
		dst = base64.StdEncoding.AppendEncode(dst[:0], src)
	}
}
