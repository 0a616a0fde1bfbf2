package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsbridge/bridge/internal/prosodytest"
)

func randomToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// apiClient calls the spawned bridge's HTTP API.
type apiClient struct {
	base, token string
	hc          http.Client
}

// call sends body (JSON, unless nil) and returns the answer's body if its
// status is want. A refused connection is retried for a few seconds: the
// API may come up just after the SMPP port the spawn waited for.
func (a *apiClient) call(ctx context.Context, method, path string, body any, want int) ([]byte, error) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, method, a.base+path, bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+a.token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := a.hc.Do(req)
		if err != nil {
			if ctx.Err() == nil && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		out, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		if resp.StatusCode != want {
			return nil, fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, bytes.TrimSpace(out))
		}
		return out, nil
	}
}

// parallel runs f(0..n-1), eight at a time, and returns the first error.
func parallel(ctx context.Context, n int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		first atomic.Pointer[error]
	)
	for range min(8, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || first.Load() != nil {
					return
				}
				if err := ctx.Err(); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		return *e
	}
	return nil
}

// provisionXMPP makes each bench XMPP user a person of the bridge's
// directory: a user xu<i> with the number xmppNumber(i) and the address
// xmpp:xu<i>@host, so that an SMS to the number reaches the user's client
// while it is online. Through the API, as an operator would.
func provisionXMPP(ctx context.Context, api *apiClient, host, password string, n int) error {
	return parallel(ctx, n, func(i int) error {
		name := xmppUserName(i)
		if _, err := api.call(ctx, http.MethodPost, "/v1/users",
			map[string]string{"name": name, "password": password, "msisdn": "+" + xmppNumber(i)}, http.StatusCreated); err != nil {
			return fmt.Errorf("provision %s: %w", name, err)
		}
		if _, err := api.call(ctx, http.MethodPost, "/v1/users/"+url.PathEscape(name)+"/addresses",
			map[string]string{"address": "xmpp:" + name + "@" + host}, http.StatusOK); err != nil {
			return fmt.Errorf("provision %s: %w", name, err)
		}
		return nil
	})
}

// online asks the bridge whether it has a binding for the XMPP user i.
func online(ctx context.Context, api *apiClient, host string, i int) (bool, error) {
	out, err := api.call(ctx, http.MethodGet, "/v1/presence/"+url.PathEscape("xmpp:"+xmppUserName(i)+"@"+host), nil, http.StatusOK)
	if err != nil {
		return false, err
	}
	var v struct {
		Online bool `json:"online"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return false, fmt.Errorf("presence of %s: %w", xmppUserName(i), err)
	}
	return v.Online, nil
}

// joinXMPP readies the bridge phase's XMPP side: it provisions the users in
// the bridge's directory, logs them in, waits for the bridge's component to
// answer a ping through Prosody, subscribes every user to the gateway and
// waits until the bridge holds a binding for each.
func joinXMPP(ctx context.Context, o Options, xs *prosodytest.Server, api *apiClient, tr *Tracker, progress io.Writer, log *slog.Logger) (_ *XMPPPool, err error) {
	start := time.Now()
	n := o.XMPPUsers
	if err := provisionXMPP(ctx, api, o.Domain, o.Password, n); err != nil {
		return nil, err
	}
	xp, err := StartXMPPPool(ctx, xs, o.Domain, o.Password, n, tr, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			xp.Close()
		}
	}()
	// Until the bridge is attached, Prosody answers for its domain with an
	// error.
	deadline := time.Now().Add(30 * time.Second)
	for try := 0; ; try++ {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = xp.Ping(pctx, 0, xs.ComponentDomain, "ready"+strconv.Itoa(try))
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return nil, fmt.Errorf("the bridge did not attach to Prosody as %s within 30s: %w", xs.ComponentDomain, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range n {
		xp.Subscribe(i)
	}
	waiting := make([]int, n)
	for i := range waiting {
		waiting[i] = i
	}
	deadline = time.Now().Add(60 * time.Second)
	asked := time.Now()
	for len(waiting) > 0 {
		var still []int
		for _, i := range waiting {
			on, err := online(ctx, api, o.Domain, i)
			if err != nil {
				return nil, err
			}
			if !on {
				still = append(still, i)
			}
		}
		waiting = still
		if len(waiting) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d XMPP users not online at the bridge after 60s (first: %s)", len(waiting), n, xmppUserName(waiting[0]))
		}
		// A request that crossed the gateway's start may have gone
		// unanswered: ask again now and then.
		if time.Since(asked) > 5*time.Second {
			for _, i := range waiting {
				xp.Subscribe(i)
			}
			asked = time.Now()
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	fmt.Fprintf(progress, "%d XMPP users provisioned, subscribed to %s and online at the bridge in %.1fs\n",
		n, xs.ComponentDomain, time.Since(start).Seconds())
	return xp, nil
}
