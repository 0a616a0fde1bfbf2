package directory

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/smsbridge/bridge/msg"
)

// bulkAdd inserts a local user with a number without the KV: the bulk path
// that fills the benchmark's directory (Open's load builds the same records
// and index, after decoding JSON).
func (d *Directory) bulkAdd(name string, number msg.Address) {
	aor, _ := d.ownAOR(name)
	t := newDraft(name, kLocal)
	t.cold.created, t.cold.updated, t.hasHA1 = 1, 1, true
	r := t.withAddrs(aor, []msg.Address{number})
	d.insert(r)
}

const (
	benchUsers = 5_000_000 // each with an own AOR and a number: 10 M addresses
	benchKeys  = 1 << 20
)

var big struct {
	once   sync.Once
	d      *Directory
	heap   uint64 // bytes the directory added to the heap
	hits   []msg.Address
	misses []msg.Address
}

func benchName(i int) string   { return "user" + pad(i, 7) }
func benchNumber(i int) string { return "+86138" + pad(i, 8) }

func pad(i, w int) string {
	s := strconv.Itoa(i)
	for len(s) < w {
		s = "0" + s
	}
	return s
}

// bigDirectory builds the 10 M-address directory once and measures the
// heap it holds (HeapAlloc after a GC, before and after).
func bigDirectory(b *testing.B) {
	big.once.Do(func() {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		d, err := newDirectory(Options{Domain: "im.example", CountryCode: "86"})
		if err != nil {
			b.Fatal(err)
		}
		for i := range benchUsers {
			d.bulkAdd(benchName(i), msg.Address(benchNumber(i)))
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		big.d, big.heap = d, m1.HeapAlloc-m0.HeapAlloc
		// Lookup keys are fresh strings, as they come off the wire: no
		// pointer shared with the map's keys.
		rng := rand.New(rand.NewPCG(1, 2))
		big.hits = make([]msg.Address, benchKeys)
		big.misses = make([]msg.Address, benchKeys)
		for k := range benchKeys {
			i := rng.IntN(benchUsers)
			if rng.IntN(2) == 0 { // AOR or number at random (not alternating: that would train the branch predictor)
				big.hits[k] = msg.Address("sip:" + benchName(i) + "@im.example")
			} else {
				big.hits[k] = msg.Address(benchNumber(i))
			}
			big.misses[k] = msg.Address("+86139" + pad(rng.IntN(100_000_000), 8))
		}
		if d.Len() != benchUsers {
			b.Fatalf("%d users", d.Len())
		}
	})
}

// reportDir adds the directory's size to a benchmark's line (after its
// loop: b.Loop's first call resets extra metrics).
func reportDir(b *testing.B) {
	b.ReportMetric(float64(big.heap)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(big.d.ix.n), "addresses")
}

// BenchmarkResolve: random lookups in a directory of 5 M users with 10 M
// addresses. Run with
//
//	go test -run '^$' -bench Resolve -benchmem ./directory/
func BenchmarkResolve(b *testing.B) {
	bigDirectory(b)
	b.Run("hit", func(b *testing.B) {
		d, keys := big.d, big.hits
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, ok := d.Resolve(keys[i&(benchKeys-1)]); !ok {
				b.Fatal("miss")
			}
			i++
		}
		reportDir(b)
	})
	b.Run("miss", func(b *testing.B) {
		d, keys := big.d, big.misses
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, ok := d.Resolve(keys[i&(benchKeys-1)]); ok {
				b.Fatal("hit")
			}
			i++
		}
		reportDir(b)
	})
	b.Run("parallel", func(b *testing.B) {
		d, keys := big.d, big.hits
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(benchKeys)
			for pb.Next() {
				if _, ok := d.Resolve(keys[i&(benchKeys-1)]); !ok {
					b.Fatal("miss")
				}
				i++
			}
		})
		reportDir(b)
	})
}

// BenchmarkResolveSmall: the compute cost of a lookup, everything in cache.
func BenchmarkResolveSmall(b *testing.B) {
	d, _ := newDirectory(Options{Domain: "im.example", CountryCode: "86"})
	keys := make([]msg.Address, 1024)
	for i := range 512 {
		d.bulkAdd(benchName(i), msg.Address(benchNumber(i)))
		keys[2*i] = msg.Address("sip:" + benchName(i) + "@im.example")
		keys[2*i+1] = msg.Address(benchNumber(i))
	}
	i := 0
	for b.Loop() {
		if _, ok := d.Resolve(keys[i&1023]); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

// BenchmarkHA1: the SIP digest lookup of a canonical name.
func BenchmarkHA1(b *testing.B) {
	d := openDir(b, nil, nil)
	if _, err := d.CreateUser(ctx, UserSpec{Name: "alice", Password: "x"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := d.HA1("alice"); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkParseAddress: what the API pays to canonicalize a typed address.
func BenchmarkParseAddress(b *testing.B) {
	d := openDir(b, nil, nil)
	for _, in := range []string{"+8613800000002", "sip:Bob@Example.COM;transport=udp", "xmpp:bob@example.com"} {
		b.Run(in[:3], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.ParseAddress(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
