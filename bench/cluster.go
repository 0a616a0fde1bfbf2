package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// spawnNodes starts n bridges from so; with n > 1 they are one cluster,
// each embedding a NATS server routed to the others and keeping its own
// data directory. On error the nodes started so far are returned too, for
// the caller to stop.
func spawnNodes(ctx context.Context, so SpawnOptions, n int) ([]*Bridge, error) {
	if n == 1 {
		b, err := Spawn(ctx, so)
		if err != nil {
			return nil, err
		}
		return []*Bridge{b}, nil
	}
	routes := make([]string, n)
	for i := range routes {
		p, err := freeTCPPort(false)
		if err != nil {
			return nil, err
		}
		routes[i] = "127.0.0.1:" + strconv.Itoa(p)
	}
	var nodes []*Bridge
	for i := range n {
		var others []string
		for j, r := range routes {
			if j != i {
				others = append(others, "nats://"+r)
			}
		}
		no := so
		no.DataDir = so.DataDir + "-" + strconv.Itoa(i+1)
		// The cluster's flags go first: o.Extra (--bridge-arg) may add
		// to them, e.g. --cluster-ack replicated.
		no.Extra = append([]string{"--node-name", "n" + strconv.Itoa(i+1), "--nats-listen", "127.0.0.1:0",
			"--nats-cluster-listen", routes[i], "--nats-routes", strings.Join(others, ",")}, so.Extra...)
		b, err := Spawn(ctx, no)
		if err != nil {
			return nodes, fmt.Errorf("node %d: %w", i+1, err)
		}
		nodes = append(nodes, b)
	}
	return nodes, nil
}

// awaitSharedPresence waits until every node sees every user registered
// at another (users[i] registered at node i mod n): until then a message
// for such a user goes as SMS, its recipient being offline as far as the
// accepting node knows.
func awaitSharedPresence(ctx context.Context, nodes []*Bridge, users []string, progress io.Writer) error {
	n := len(nodes)
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	for i, b := range nodes {
		api := &apiClient{base: "http://" + b.HTTPAddr, token: b.APIToken}
		for u, user := range users {
			if u%n == i {
				continue
			}
			for {
				ok, err := hasBinding(ctx, api, user)
				if err != nil {
					return err
				}
				if ok {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("node %d does not see %s, registered at node %d, after 60s\n%s",
						i+1, user, u%n+1, clusterState(ctx, nodes))
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	fmt.Fprintf(progress, "presence shared by the %d nodes %.1fs after the registrations\n", n, time.Since(start).Seconds())
	return nil
}

// hasBinding asks a node whether it knows a binding of number, its own or
// another node's.
func hasBinding(ctx context.Context, api *apiClient, number string) (bool, error) {
	out, err := api.call(ctx, http.MethodGet, "/v1/presence/"+url.PathEscape("+"+number), nil, http.StatusOK)
	if err != nil {
		return false, err
	}
	var v struct {
		Bindings []json.RawMessage `json:"bindings"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return false, fmt.Errorf("presence of %s: %w", number, err)
	}
	return len(v.Bindings) > 0, nil
}

// clusterState is what each node counts and has logged, for an error
// that only the nodes can explain.
func clusterState(ctx context.Context, nodes []*Bridge) string {
	var sb strings.Builder
	for i, b := range nodes {
		fmt.Fprintf(&sb, "node %d counters:\n%snode %d log:\n%s", i+1, imCounters(ctx, b), i+1, b.Stderr())
	}
	return sb.String()
}

// imCounters is a node's IM, fallback and cluster lines of /metrics.
func imCounters(ctx context.Context, b *Bridge) string {
	api := &apiClient{base: "http://" + b.HTTPAddr, token: b.APIToken}
	out, err := api.call(ctx, http.MethodGet, "/metrics", nil, http.StatusOK)
	if err != nil {
		return err.Error() + "\n"
	}
	var sb strings.Builder
	for line := range strings.Lines(string(out)) {
		for _, p := range []string{"bridge_im_", "bridge_fallbacks_", "bridge_cluster_", "bridge_routed_"} {
			if strings.HasPrefix(line, p) {
				sb.WriteString(line)
			}
		}
	}
	return sb.String()
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
