// Package pcap exports a session recording (exporters/record) as a
// pcapng capture: synthetic Ethernet/IPv4/TCP framing of both directions,
// with the recorded times, so that Wireshark and tshark dissect the POP3
// conversation. A session whose TLS popscope terminated is exported as
// the decrypted POP3 it recorded.
//
// # Framing
//
// A three-way handshake at the session start; every recorded chunk cut
// into segments of at most MSS octets, PSH/ACK, with correct sequence and
// acknowledgement numbers, each followed by the receiver's ACK; bytes the
// recorder lost (gap records) advance the sequence number, which
// Wireshark shows as "previous segment not captured"; FIN/ACK from the
// side that closed first (from the session_end event), then the other.
// An incomplete recording (the proxy was killed) has no FIN. Checksums are
// computed. The server port is Options.Port (default 110, which
// Wireshark dissects as POP without "-d").
//
// # Usage
//
//	rec, _ := record.ReadFile(name)
//	st, err := pcap.Write(f, rec, pcap.Options{Port: 110})
//
// # Concurrency
//
// Write is a pure function of its arguments.
package pcap

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/popscope/popscope/event"
	"github.com/popscope/popscope/exporters/record"
)

// Defaults.
const (
	DefaultPort = 110
	DefaultMSS  = 1460
)

// Options configure Write.
type Options struct {
	// Port is the server's TCP port in the synthetic headers (default 110).
	Port int
	// MSS is the largest TCP payload per segment (default 1460).
	MSS int
	// Version is written to the capture's section header.
	Version string
}

// Stats describe what Write produced.
type Stats struct {
	Packets  int
	Segments int // data segments
	Bytes    int64
	// Gaps counts lost-byte records turned into sequence jumps.
	Gaps   int
	Client netip.AddrPort
	Server netip.AddrPort
}

// Synthetic addresses used when the recorded ones are not IPv4.
var (
	fallbackClient = netip.MustParseAddr("10.0.0.1")
	fallbackServer = netip.MustParseAddr("10.0.0.2")
	clientMAC      = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	serverMAC      = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}
)

// endpoints picks the synthetic addresses: the recorded client address
// and upstream host when they are IPv4, the server port from opt.
func endpoints(h record.Header, port int) (c, s netip.AddrPort) {
	cp := uint16(40000)
	cip := fallbackClient
	if ap, err := netip.ParseAddrPort(h.Client); err == nil {
		if a := ap.Addr().Unmap(); a.Is4() {
			cip = a
		}
		if ap.Port() != 0 {
			cp = ap.Port()
		}
	}
	sip := fallbackServer
	if host, _, err := net.SplitHostPort(h.Upstream); err == nil {
		if a, err := netip.ParseAddr(host); err == nil && a.Unmap().Is4() {
			sip = a.Unmap()
		}
	}
	if cp == uint16(port) && cip == sip {
		cp++
	}
	return netip.AddrPortFrom(cip, cp), netip.AddrPortFrom(sip, uint16(port))
}

// isn derives a stable initial sequence number from the session id.
func isn(id string, side string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id + "/" + side))
	return h.Sum32()
}

type flow struct {
	ip   netip.AddrPort
	mac  net.HardwareAddr
	seq  uint32 // next sequence number to send
	isn  uint32
	fin  bool
	peer *flow
}

type writer struct {
	w     *pcapgo.NgWriter
	opt   Options
	buf   gopacket.SerializeBuffer
	st    Stats
	start time.Time
}

func (wr *writer) packet(at time.Time, from *flow, syn, ack, psh, fin bool, payload []byte) error {
	to := from.peer
	eth := &layers.Ethernet{SrcMAC: from.mac, DstMAC: to.mac, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
		SrcIP: from.ip.Addr().AsSlice(), DstIP: to.ip.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(from.ip.Port()), DstPort: layers.TCPPort(to.ip.Port()),
		Seq: from.seq, SYN: syn, ACK: ack, PSH: psh, FIN: fin, Window: 65535}
	if ack {
		tcp.Ack = to.seq
	}
	if syn {
		tcp.Seq = from.isn
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4,
			OptionData: []byte{byte(wr.opt.MSS >> 8), byte(wr.opt.MSS)}}}
	}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		return err
	}
	if err := gopacket.SerializeLayers(wr.buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		return err
	}
	data := wr.buf.Bytes()
	wr.st.Packets++
	return wr.w.WritePacket(gopacket.CaptureInfo{Timestamp: at, CaptureLength: len(data), Length: len(data)}, data)
}

// Write writes rec to w as a pcapng capture.
func Write(w io.Writer, rec *record.Recording, opt Options) (Stats, error) {
	if opt.Port <= 0 || opt.Port > 65535 {
		if opt.Port != 0 {
			return Stats{}, fmt.Errorf("pcap: port %d out of range", opt.Port)
		}
		opt.Port = DefaultPort
	}
	if opt.MSS <= 0 {
		opt.MSS = DefaultMSS
	}
	if opt.MSS > 65495 {
		return Stats{}, errors.New("pcap: MSS too large")
	}
	h := rec.Header
	ca, sa := endpoints(h, opt.Port)
	app := "popscope"
	if opt.Version != "" {
		app += " " + opt.Version
	}
	comment := fmt.Sprintf("popscope recording of session %s: client %s, upstream %s; synthetic TCP/IPv4 framing, server port %d",
		h.Session, h.Client, h.Upstream, opt.Port)
	if h.Redacted {
		comment += "; secrets redacted"
	}
	ng, err := pcapgo.NewNgWriterInterface(w, pcapgo.NgInterface{Name: "popscope", Description: "synthetic, from a recording",
		LinkType: layers.LinkTypeEthernet, TimestampResolution: 9},
		pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: app, Comment: comment}})
	if err != nil {
		return Stats{}, fmt.Errorf("pcap: %w", err)
	}
	wr := &writer{w: ng, opt: opt, buf: gopacket.NewSerializeBuffer(), start: h.Start}
	wr.st.Client, wr.st.Server = ca, sa
	cli := &flow{ip: ca, mac: clientMAC, isn: isn(h.Session, "c")}
	srv := &flow{ip: sa, mac: serverMAC, isn: isn(h.Session, "s")}
	cli.peer, srv.peer = srv, cli
	flows := map[event.Side]*flow{event.Client: cli, event.Server: srv}

	// Handshake.
	t := h.Start
	if err := wr.packet(t, cli, true, false, false, false, nil); err != nil {
		return wr.st, err
	}
	cli.seq = cli.isn + 1
	if err := wr.packet(t.Add(time.Microsecond), srv, true, true, false, false, nil); err != nil {
		return wr.st, err
	}
	srv.seq = srv.isn + 1
	if err := wr.packet(t.Add(2*time.Microsecond), cli, false, true, false, false, nil); err != nil {
		return wr.st, err
	}
	last := t.Add(2 * time.Microsecond)
	at := func(d time.Duration) time.Time {
		x := h.Start.Add(d)
		if x.Before(last) {
			x = last // keep the capture in order
		}
		last = x
		return x
	}
	firstClose := event.Client
	var endT time.Duration
	ended := false
	for _, r := range rec.Records {
		switch r.Kind {
		case record.KindData:
			f := flows[r.Side]
			ts := at(r.T)
			for p := r.Data; len(p) > 0; {
				seg := p[:min(len(p), opt.MSS)]
				p = p[len(seg):]
				if err := wr.packet(ts, f, false, true, true, false, seg); err != nil {
					return wr.st, err
				}
				f.seq += uint32(len(seg))
				wr.st.Segments++
				wr.st.Bytes += int64(len(seg))
			}
			if err := wr.packet(ts, f.peer, false, true, false, false, nil); err != nil {
				return wr.st, err
			}
		case record.KindGap:
			if f := flows[r.Side]; f != nil && r.Lost > 0 {
				f.seq += uint32(r.Lost)
				wr.st.Gaps++
			}
		case record.KindEvent:
			if r.Event.Type == event.SessionEnd && strings.HasPrefix(r.Event.Reason, "server") {
				firstClose = event.Server
			}
		case record.KindEnd:
			ended, endT = true, r.T
		}
	}
	if ended {
		ts := at(endT)
		a := flows[firstClose]
		for _, f := range []*flow{a, a.peer} {
			if err := wr.packet(ts, f, false, true, false, true, nil); err != nil {
				return wr.st, err
			}
			f.seq++
		}
		if err := wr.packet(ts, a, false, true, false, false, nil); err != nil {
			return wr.st, err
		}
	}
	if err := ng.Flush(); err != nil {
		return wr.st, fmt.Errorf("pcap: %w", err)
	}
	return wr.st, nil
}
