package pcap

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/exporters/record"
)

var t0 = time.Date(2026, 11, 26, 3, 54, 18, 0, time.UTC)

// testRecording builds a recording in memory from lines "c:…"/"s:…" and
// "gap:s:N", with times 1ms apart.
func testRecording(t *testing.T, client, upstream string, complete bool, steps ...string) *record.Recording {
	t.Helper()
	rec := &record.Recording{Header: record.Header{Format: record.FormatName, Version: 1, Session: "f00d", Client: client, Upstream: upstream, Start: t0}}
	for i, st := range steps {
		d := time.Duration(i+1) * time.Millisecond
		switch {
		case strings.HasPrefix(st, "gap:s:"):
			rec.Records = append(rec.Records, record.Record{Kind: record.KindGap, T: d, Side: event.Server, Lost: int64(len(st) - 6)})
		case strings.HasPrefix(st, "c:"):
			rec.Records = append(rec.Records, record.Record{Kind: record.KindData, T: d, Side: event.Client, Data: []byte(st[2:])})
		case strings.HasPrefix(st, "s:"):
			rec.Records = append(rec.Records, record.Record{Kind: record.KindData, T: d, Side: event.Server, Data: []byte(st[2:])})
		case strings.HasPrefix(st, "end:"):
			rec.Records = append(rec.Records, record.Record{Kind: record.KindEvent, T: d, Event: &event.Event{Type: event.SessionEnd, Reason: st[4:]}})
		}
	}
	if complete {
		rec.Records = append(rec.Records, record.Record{Kind: record.KindEnd, T: time.Duration(len(steps)+1) * time.Millisecond, End: &record.End{}})
		rec.Complete = true
	}
	return rec
}

type pkt struct {
	at      time.Time
	tcp     *layers.TCP
	ip      *layers.IPv4
	payload []byte
	raw     []byte
}

func readBack(t *testing.T, b []byte) []pkt {
	t.Helper()
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("link type %v", r.LinkType())
	}
	var out []pkt
	for i := 0; i < 1e6; i++ {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := gopacket.NewPacket(data, layers.LinkTypeEthernet, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("packet %d: %v", i, el.Error())
		}
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if tcp == nil || ip == nil {
			t.Fatalf("packet %d: no IPv4/TCP", i)
		}
		out = append(out, pkt{at: ci.Timestamp, tcp: tcp, ip: ip, payload: tcp.Payload, raw: append([]byte(nil), data...)})
	}
	return out
}

func TestWriteReadBack(t *testing.T) {
	big := strings.Repeat("0123456789", 500) // 5000 bytes: 4 segments of 1460
	rec := testRecording(t, "127.0.0.1:51234", "127.0.0.1:11110", true,
		"s:+OK ready\r\n", "c:USER alice\r\n", "s:+OK\r\n", "c:RETR 1\r\n", "s:+OK\r\n"+big+"\r\n.\r\n", "gap:s:xxxx", "s:+OK tail\r\n", "end:server closed")
	var b bytes.Buffer
	st, err := Write(&b, rec, Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	pk := readBack(t, b.Bytes())
	if st.Packets != len(pk) {
		t.Errorf("stats %d packets, read %d", st.Packets, len(pk))
	}
	// Handshake.
	if !pk[0].tcp.SYN || pk[0].tcp.ACK || !pk[1].tcp.SYN || !pk[1].tcp.ACK || pk[2].tcp.SYN || !pk[2].tcp.ACK {
		t.Fatal("no three-way handshake")
	}
	if pk[1].tcp.Ack != pk[0].tcp.Seq+1 || pk[2].tcp.Ack != pk[1].tcp.Seq+1 {
		t.Error("handshake ack numbers")
	}
	cport, sport := pk[0].tcp.SrcPort, pk[0].tcp.DstPort
	if sport != 110 || cport != 51234 || pk[0].ip.SrcIP.String() != "127.0.0.1" {
		t.Errorf("endpoints %v:%d -> %d", pk[0].ip.SrcIP, cport, sport)
	}
	// Streams, sequence and ack numbers, MSS, checksums, times.
	next := map[layers.TCPPort]uint32{cport: pk[0].tcp.Seq + 1, sport: pk[1].tcp.Seq + 1}
	streams := map[layers.TCPPort]*bytes.Buffer{cport: {}, sport: {}}
	gapSeen := false
	var fins []layers.TCPPort
	for i, p := range pk[3:] {
		from := p.tcp.SrcPort
		to := cport
		if from == cport {
			to = sport
		}
		if p.tcp.Seq != next[from] {
			if from == sport && p.tcp.Seq == next[from]+4 && !gapSeen {
				gapSeen = true
				next[from] = p.tcp.Seq
			} else {
				t.Fatalf("packet %d: seq %d, want %d", i+3, p.tcp.Seq, next[from])
			}
		}
		if !p.tcp.ACK || p.tcp.Ack != next[to] {
			t.Fatalf("packet %d: ack %d, want %d", i+3, p.tcp.Ack, next[to])
		}
		if len(p.payload) > DefaultMSS {
			t.Fatalf("packet %d: %d bytes > MSS", i+3, len(p.payload))
		}
		streams[from].Write(p.payload)
		next[from] += uint32(len(p.payload))
		if p.tcp.FIN {
			next[from]++
			fins = append(fins, from)
		}
		if p.at.Before(t0) || p.at.After(t0.Add(time.Second)) {
			t.Fatalf("packet %d at %v", i+3, p.at)
		}
		// Checksums: re-serialising with computed checksums gives the same bytes.
		pp := gopacket.NewPacket(p.raw, layers.LinkTypeEthernet, gopacket.Default)
		ip := pp.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp := pp.Layer(layers.LayerTypeTCP).(*layers.TCP)
		tcp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			pp.Layer(layers.LayerTypeEthernet).(*layers.Ethernet), ip, tcp, gopacket.Payload(tcp.Payload))
		if !bytes.Equal(buf.Bytes(), p.raw) {
			t.Fatalf("packet %d: checksums wrong", i+3)
		}
	}
	if !gapSeen {
		t.Error("the gap is not a sequence jump")
	}
	if got := streams[cport].String(); got != "USER alice\r\nRETR 1\r\n" {
		t.Errorf("client stream %q", got)
	}
	if got := streams[sport].String(); got != "+OK ready\r\n+OK\r\n+OK\r\n"+big+"\r\n.\r\n+OK tail\r\n" {
		t.Errorf("server stream %d bytes", len(got))
	}
	if len(fins) != 2 || fins[0] != sport {
		t.Errorf("FINs %v: want server first", fins)
	}
	// The first client segment carries the recorded time.
	for _, p := range pk {
		if len(p.payload) > 0 && p.tcp.SrcPort == cport {
			if !p.at.Equal(t0.Add(2 * time.Millisecond)) {
				t.Errorf("USER at %v, want %v", p.at, t0.Add(2*time.Millisecond))
			}
			break
		}
	}
}

func TestEndpointsAndPort(t *testing.T) {
	rec := testRecording(t, "[::1]:5000", "mail.example.test:995", false, "s:+OK\r\n")
	var b bytes.Buffer
	st, err := Write(&b, rec, Options{Port: 1110, MSS: 100})
	if err != nil {
		t.Fatal(err)
	}
	if st.Client.String() != "10.0.0.1:5000" || st.Server.String() != "10.0.0.2:1110" {
		t.Errorf("endpoints %v %v", st.Client, st.Server)
	}
	pk := readBack(t, b.Bytes())
	for _, p := range pk {
		if p.tcp.FIN {
			t.Error("an incomplete recording must not end with FIN")
		}
	}
	if _, err := Write(&b, rec, Options{Port: 70000}); err == nil {
		t.Error("port 70000 accepted")
	}
}

// TestTshark: tshark dissects the export as POP (skipped without tshark).
func TestTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark is not installed")
	}
	rec := testRecording(t, "127.0.0.1:40001", "127.0.0.1:11110", true,
		"s:+OK ready\r\n", "c:CAPA\r\n", "s:+OK\r\nUSER\r\n.\r\n", "c:USER alice\r\n", "s:+OK\r\n", "c:STAT\r\n", "s:+OK 1 5\r\n", "c:QUIT\r\n", "s:+OK\r\n", "end:client closed")
	for _, port := range []int{110, 2110} {
		out := filepath.Join(t.TempDir(), "out.pcapng")
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Write(f, rec, Options{Port: port}); err != nil {
			t.Fatal(err)
		}
		f.Close()
		args := []string{"-r", out, "-T", "fields", "-e", "pop.request.command"}
		if port != 110 {
			args = append(args, "-d", "tcp.port==2110,pop")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, tshark, args...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		got, err := cmd.Output()
		cancel()
		if err != nil {
			t.Fatalf("tshark: %v", err)
		}
		var cmds []string
		for _, l := range strings.Split(string(got), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				cmds = append(cmds, l)
			}
		}
		if strings.Join(cmds, " ") != "CAPA USER STAT QUIT" {
			t.Errorf("port %d: tshark commands %q", port, cmds)
		}
	}
}
