package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// composeCommand is the Compose installed: docker-compose, or docker's
// compose plugin. Neither skips, or fails under BRIDGE_REQUIRE_INTEROP=1.
func composeCommand(t *testing.T) []string {
	t.Helper()
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	if p, err := exec.LookPath("docker"); err == nil && exec.Command(p, "compose", "version").Run() == nil {
		return []string{p, "compose"}
	}
	requireInterop(t, "docker-compose")
	return nil
}

// composeSecrets are the variables docker-compose.yml refuses to start without.
var composeSecrets = []string{"SMSC_PASSWORD", "ESME_ACCOUNT", "API_TOKEN", "XMPP_SECRET"}

// composeConfig runs `compose config` on the repository's file with only
// env (and PATH, HOME) in its environment, so the runner's own variables
// and no .env fill in what the file asks for.
func composeConfig(t *testing.T, env ...string) (string, error) {
	t.Helper()
	return composeConfigOf(t, "docker-compose.yml", env...)
}

// composeConfigOf is composeConfig of another compose file of the repository.
func composeConfigOf(t *testing.T, file string, env ...string) (string, error) {
	t.Helper()
	root := repoRoot(t)
	c := composeCommand(t)
	empty := filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(c[0], append(c[1:], "--env-file", empty, "-f", filepath.Join(root, file), "config")...)
	cmd.Dir = root
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func secretsEnv(except string) []string {
	var env []string
	for _, v := range composeSecrets {
		if v != except {
			env = append(env, v+"=test-"+strings.ToLower(v))
		}
	}
	return env
}

// publishedHosts returns the host address of every published port in a
// rendered compose file (docker-compose's short syntax or the plugin's long).
func publishedHosts(cfg string) []string {
	var hosts []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- "?([0-9.]+):\d+:\d+(/(tcp|udp))?"?$`).FindAllStringSubmatch(cfg, -1) {
		hosts = append(hosts, m[1])
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*host_ip: "?([0-9.]+)"?$`).FindAllStringSubmatch(cfg, -1) {
		hosts = append(hosts, m[1])
	}
	return hosts
}

// TestComposeConfig: docker-compose.yml refuses to render without each of
// its secrets, naming the one missing; with them it has no placeholder
// secret, publishes every port on 127.0.0.1 unless BRIDGE_BIND says
// otherwise, checks the bridge's health through /readyz and starts Kamailio
// once it is healthy, and mounts the very Kamailio config the interop test
// runs; .dockerignore keeps secrets and the repository out of images.
func TestComposeConfig(t *testing.T) {
	if out, err := composeConfig(t); err == nil {
		t.Fatalf("rendered without any secret:\n%s", out)
	}
	for _, v := range composeSecrets {
		out, err := composeConfig(t, secretsEnv(v)...)
		if err == nil || !strings.Contains(out, "set "+v) {
			t.Fatalf("without %s: err %v, output does not name it:\n%s", v, err, out)
		}
	}
	out, err := composeConfig(t, secretsEnv("")...)
	if err != nil {
		t.Fatalf("compose config with every secret: %v\n%s", err, out)
	}
	if strings.Contains(strings.ToLower(out), "changeme") {
		t.Fatalf("a placeholder secret is left:\n%s", out)
	}
	hosts := publishedHosts(out)
	if len(hosts) != 6 {
		t.Fatalf("found %d published ports, want 6: %v\n%s", len(hosts), hosts, out)
	}
	for _, h := range hosts {
		if h != "127.0.0.1" {
			t.Fatalf("a port is published on %s by default:\n%s", h, out)
		}
	}
	for _, want := range []string{"/usr/local/bin/bridge", "health", "http://127.0.0.1:8080/readyz", "service_healthy",
		filepath.Join(repoRoot(t), "kamailio", "kamailio.cfg")} {
		if !strings.Contains(out, want) {
			t.Fatalf("rendered config lacks %q:\n%s", want, out)
		}
	}
	out, err = composeConfig(t, append(secretsEnv(""), "BRIDGE_BIND=0.0.0.0")...)
	if err != nil {
		t.Fatalf("compose config with BRIDGE_BIND: %v\n%s", err, out)
	}
	if hosts := publishedHosts(out); len(hosts) != 6 || strings.Count(strings.Join(hosts, " "), "0.0.0.0") != 6 {
		t.Fatalf("BRIDGE_BIND=0.0.0.0 published on %v", hosts)
	}

	ignore, err := os.ReadFile(filepath.Join(repoRoot(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(ignore))
	for _, want := range []string{".git", ".env", "data/"} {
		found := false
		for _, l := range lines {
			found = found || l == want
		}
		if !found {
			t.Fatalf(".dockerignore lacks %s:\n%s", want, ignore)
		}
	}
}

// TestComposeClusterConfig: docker-compose.cluster.yml renders three
// bridges whose embedded NATS servers route to one another, each with its
// own volume, health check and replicated acknowledgements, behind one
// Kamailio and SMSC simulator; it refuses to render without its secrets and
// publishes on 127.0.0.1 by default.
func TestComposeClusterConfig(t *testing.T) {
	const file = "docker-compose.cluster.yml"
	secrets := []string{"SMSC_PASSWORD", "ESME_ACCOUNT", "API_TOKEN"}
	for _, v := range secrets {
		var env []string
		for _, o := range secrets {
			if o != v {
				env = append(env, o+"=test-"+strings.ToLower(o))
			}
		}
		if out, err := composeConfigOf(t, file, env...); err == nil || !strings.Contains(out, "set "+v) {
			t.Fatalf("without %s: err %v, output does not name it:\n%s", v, err, out)
		}
	}
	var env []string
	for _, o := range secrets {
		env = append(env, o+"=test-"+strings.ToLower(o))
	}
	out, err := composeConfigOf(t, file, env...)
	if err != nil {
		t.Fatalf("compose config: %v\n%s", err, out)
	}
	ips := map[string]string{"bridge1": "172.29.0.21", "bridge2": "172.29.0.22", "bridge3": "172.29.0.23"}
	for node, ip := range ips {
		for _, want := range []string{"--node-name=" + node, "--nats-cluster-listen=" + ip + ":6222", node + "-data:/data"} {
			if !strings.Contains(out, want) {
				t.Fatalf("rendered config lacks %q:\n%s", want, out)
			}
		}
		var routes []string
		for other, oip := range ips {
			if other != node {
				routes = append(routes, "nats://"+oip+":6222")
			}
		}
		if !strings.Contains(out, "--nats-routes="+routes[0]+","+routes[1]) && !strings.Contains(out, "--nats-routes="+routes[1]+","+routes[0]) {
			t.Fatalf("%s does not route to the other two (%v):\n%s", node, routes, out)
		}
	}
	if n := strings.Count(out, "--cluster-ack=replicated"); n != 3 {
		t.Fatalf("%d bridges acknowledge after a replicated write, want 3", n)
	}
	if n := strings.Count(out, "/usr/local/bin/bridge"); n != 3 {
		t.Fatalf("%d bridge health checks, want 3", n)
	}
	for _, want := range []string{"kamailio", "smscsim", "service_healthy"} {
		if !strings.Contains(out, want) {
			t.Fatalf("rendered config lacks %q", want)
		}
	}
	for _, h := range publishedHosts(out) {
		if h != "127.0.0.1" {
			t.Fatalf("a port is published on %s by default:\n%s", h, out)
		}
	}
	if hosts := publishedHosts(out); len(hosts) != 7 {
		t.Fatalf("found %d published ports, want 7: %v", len(hosts), hosts)
	}
}

// TestHealthCommand: `bridge health URL`, the compose healthcheck, exits 0
// on a running bridge's /readyz, 1 with the answer on a 503, 1 when nothing
// listens.
func TestHealthCommand(t *testing.T) {
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"health", "http://" + b.addrs.HTTP + "/readyz"}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "ready") {
		t.Fatalf("health on a ready bridge: exit %d, %q %q", code, stdout.String(), stderr.String())
	}
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not ready: store: data directory gone", http.StatusServiceUnavailable)
	}))
	defer notReady.Close()
	stderr.Reset()
	if code := run([]string{"health", notReady.URL + "/readyz"}, nil, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "503 not ready: store: data directory gone") {
		t.Fatalf("health on a 503: exit %d, %q", code, stderr.String())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if code := run([]string{"health", "http://" + addr + "/readyz"}, nil, &stdout, &stderr); code != 1 {
		t.Fatalf("health with nothing listening: exit %d", code)
	}
}
