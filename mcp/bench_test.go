package mcp

import (
	"context"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// countConn counts the bytes the server reads and writes on the link.
type countConn struct {
	net.Conn
	in, out *atomic.Int64
}

func (c countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

type countListener struct {
	net.Listener
	in, out atomic.Int64
}

func (l *countListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countConn{c, &l.in, &l.out}, nil
}

// linkOnly is the server with a router that only numbers messages: the
// cost of the link itself (TCP, framing, codec, SIP-C, digest-free).
func linkOnly(b *testing.B, stateless bool) (*Server, *countListener, *presence.Store) {
	pres, _ := presence.Open(presence.Options{})
	var n atomic.Uint64
	srv, err := New(Config{Domain: domain, CountryCode: "86", HA1: testHA1, Stateless: stateless}, pres,
		numberer(func(m *msg.Message) { m.ID = "m" + strconv.FormatUint(n.Add(1), 10) }))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cl := &countListener{Listener: ln}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		srv.Serve(ctx, cl)
	}()
	b.Cleanup(func() { cancel(); wg.Wait() })
	return srv, cl, pres
}

const benchText = "明天下午三点在公司门口见，别忘了带文件 👍"

// benchTexts vary the body so the stateful stream cannot just repeat one.
var benchTexts = []string{
	benchText,
	"ok, see you at 3pm. bring the contract and the two invoices please",
	"收到，我马上过去",
	"Where are you? The meeting started 10 minutes ago!!",
	"晚上一起吃饭吗？老地方，七点。",
	"Your verification code is 482913. It expires in 5 minutes.",
}

func benchMsg(i int) string { return benchTexts[i%len(benchTexts)] + " #" + strconv.Itoa(i) }

// BenchmarkMessageRoundTrip: one handset M (SendCatSMS) and its 280 over
// loopback TCP. wire-B/op counts both directions including length prefixes.
func BenchmarkMessageRoundTrip(b *testing.B) {
	for _, mode := range []string{"stateful", "stateless"} {
		b.Run(mode, func(b *testing.B) {
			_, cl, _ := linkOnly(b, mode == "stateless")
			h, err := Dial(context.Background(), cl.Addr().String(), mode == "stateful")
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			if err := h.Register(context.Background(), "13800000001", passwords["13800000001"], domain, 600); err != nil {
				b.Fatal(err)
			}
			in0, out0 := cl.in.Load(), cl.out.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				code, err := h.SendMessage(context.Background(), "13900000009", benchMsg(i), true)
				if err != nil || code != 280 {
					b.Fatalf("%d %v", code, err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(cl.in.Load()-in0+cl.out.Load()-out0)/float64(b.N), "wire-B/op")
		})
	}
}

// BenchmarkMessageRoundTripRouter: the same through the real router and
// in-memory store (durable acceptance before the 280), SMS route a sink.
func BenchmarkMessageRoundTripRouter(b *testing.B) {
	br := startBridge(b, nil)
	go func() {
		for range br.sms {
		}
	}()
	h := br.login(b, "13800000001")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		code, err := h.SendMessage(context.Background(), "13900000009", benchMsg(i), true)
		if err != nil || code != 280 {
			b.Fatalf("%d %v", code, err)
		}
	}
}

// BenchmarkSendIM: the bridge's M to a handset and its 200, as the router
// calls it; parallel runs many in flight on one connection.
func BenchmarkSendIM(b *testing.B) {
	for _, par := range []bool{false, true} {
		name := "serial"
		if par {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) {
			srv, cl, pres := linkOnly(b, false)
			h, err := Dial(context.Background(), cl.Addr().String(), true)
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			go func() {
				for range h.Messages() {
				}
			}()
			if err := h.Register(context.Background(), "13800000001", passwords["13800000001"], domain, 600); err != nil {
				b.Fatal(err)
			}
			bd, ok := pres.Lookup("+8613800000001")
			if !ok {
				b.Fatal("not present")
			}
			m := &msg.Message{ID: "0123456789abcdefghij", From: "+8613900000009", To: bd.AOR, Text: benchText}
			in0, out0 := cl.in.Load(), cl.out.Load()
			b.ReportAllocs()
			b.ResetTimer()
			if par {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := srv.SendIM(context.Background(), m, bd); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				for i := 0; i < b.N; i++ {
					if err := srv.SendIM(context.Background(), m, bd); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(cl.in.Load()-in0+cl.out.Load()-out0)/float64(b.N), "wire-B/op")
		})
	}
}

// BenchmarkConnMemory: heap held per idle connection (stateful codec pair,
// buffers, goroutines' stacks are not in the heap figure).
func BenchmarkConnMemory(b *testing.B) {
	const n = 200
	srv, cl, _ := linkOnly(b, false)
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		conns := make([]net.Conn, n)
		for j := range conns {
			c, err := net.Dial("tcp", cl.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			conns[j] = c
		}
		testutil.WaitFor(b, "every connection accepted", 10*time.Second, func() bool { return srv.Conns() >= n })
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/conn")
		for _, c := range conns {
			c.Close()
		}
		testutil.WaitFor(b, "every connection gone", 10*time.Second, func() bool { return srv.Conns() == 0 })
	}
}

// numberer is a msg.Stager that only gives each message an ID.
type numberer func(m *msg.Message)

func (f numberer) Stage(_ context.Context, m *msg.Message) (msg.Ack, error) {
	f(m)
	return msg.Settled{}, nil
}
