package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// defaultHealthURL is a bridge's readiness on its default HTTP address.
const defaultHealthURL = "http://127.0.0.1:8080/readyz"

// runHealth is `bridge health [URL]`: exit 0 when URL (a bridge's /readyz
// or /healthz) answers 200, else 1 with the answer. The image has no shell
// or curl, so a container healthcheck runs the binary itself.
func runHealth(args []string, stdout, stderr io.Writer) int {
	url := defaultHealthURL
	switch len(args) {
	case 0:
	case 1:
		url = args[0]
	default:
		fmt.Fprintln(stderr, "usage: bridge health [URL]   (default "+defaultHealthURL+")")
		return 2
	}
	c := http.Client{Timeout: 3 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(stderr, "bridge health:", err)
		return 1
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "bridge health: %s: %d %s\n", url, res.StatusCode, strings.TrimSpace(string(body)))
		return 1
	}
	fmt.Fprint(stdout, string(body))
	return 0
}
