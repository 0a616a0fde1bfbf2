package dlr

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/store"
)

// A report nobody takes is retried with backoff until its expiry, then
// dropped from the store; one whose outcome came meanwhile is replaced.
func TestReportExpiresAndIsForgotten(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	db, err := store.Open(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := New(Config{KV: db, Secret: []byte("k"), Expiry: 600 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	m := &msg.Message{ID: "0000000000000001", From: "+8613800000001", To: "+8613800000002", ReportURL: srv.URL}
	n.HandedOff(ctx, m, time.Now())
	n.Report(ctx, m, msg.Outcome{State: msg.Failed, Stat: "UNDELIV", Detail: "smsc receipt UNDELIV"})
	testutil.WaitFor(t, "the report given up", 10*time.Second, func() bool { return n.Expired.Load() == 1 && n.Pending() == 0 })
	if h := hits.Load(); h < 4 {
		t.Fatalf("%d attempts in 600ms with 20-100ms backoff", h)
	}
	left := 0
	testutil.WaitFor(t, "the store emptied", 5*time.Second, func() bool {
		left = 0
		db.Iterate([]byte(prefix), func(_, _ []byte) error { left++; return nil })
		return left == 0
	})
	if n.Sent.Load() != 0 {
		t.Fatalf("sent %d", n.Sent.Load())
	}
}

func TestStateOf(t *testing.T) {
	for _, c := range []struct {
		o    msg.Outcome
		want string
	}{
		{msg.Outcome{Delivered: true, State: msg.Delivered, Stat: "DELIVRD"}, Delivered},
		{msg.Outcome{State: msg.Failed, Stat: "DELETED"}, Undelivered},
		{msg.Outcome{State: msg.Expired, Stat: "EXPIRED"}, Expired},
		{msg.Outcome{State: msg.Failed, Stat: "REJECTD"}, Rejected},
		{msg.Outcome{Delivered: true, State: msg.Delivered, Via: msg.ViaIM}, Delivered},
		{msg.Outcome{State: msg.Expired}, Expired},
		{msg.Outcome{State: msg.Failed, Detail: "sms: ESME_RINVDSTADR"}, Rejected},
	} {
		if got := StateOf(c.o); got != c.want {
			t.Errorf("%+v: %s, want %s", c.o, got, c.want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for u, ok := range map[string]bool{"https://a.example/dlr?x=1": true, "http://127.0.0.1:8080/": true,
		"ftp://a.example/": false, "/relative": false, "https://user:pw@a.example/": false, "javascript:alert(1)": false} {
		if err := CheckURL(u); (err == nil) != ok {
			t.Errorf("%q: %v", u, err)
		}
	}
}
