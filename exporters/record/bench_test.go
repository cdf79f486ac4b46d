package record

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/popscope/popscope/event"
)

// BenchmarkRecordServerData: the recorder's whole cost per byte of a bulk
// server transfer (copy, write to the data file) in a steady state: the producer
// waits while the queue is half full, so nothing is lost.
// POPSCOPE_BENCH_RECORD_DIR chooses the file system (default: a temp dir).
func BenchmarkRecordServerData(b *testing.B) {
	dir := b.TempDir()
	if d := os.Getenv("POPSCOPE_BENCH_RECORD_DIR"); d != "" {
		dir, _ = os.MkdirTemp(d, "rec-")
		defer os.RemoveAll(dir)
	}
	r, err := New(Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 256<<10)
	for i := range chunk {
		chunk[i] = byte('a' + i%26)
	}
	s := r.Open("bench", time.Now(), "c", "u")
	s.Data(event.Server, time.Now(), []byte("+OK\r\n"))
	b.SetBytes(int64(len(chunk)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Keep the queue below the bound (a steady state without loss).
		for k := 0; k < 200000; k++ {
			s.mu.Lock()
			p := s.pending
			s.mu.Unlock()
			if p < DefaultBufferLimit/2 {
				break
			}
			time.Sleep(50 * time.Microsecond)
		}
		s.Data(event.Server, time.Now(), chunk)
	}
	s.Close(time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r.Close(ctx)
	b.StopTimer()
	if st := r.Stats(); st.LostBytes > 0 {
		b.Logf("lost %d bytes", st.LostBytes)
	}
}
