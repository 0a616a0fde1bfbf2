// Package api is the bridge's HTTP face on fasthttp: health and readiness for
// orchestrators, Prometheus metrics (with a lock-free Histogram other
// packages observe into), the message API (POST a message into the router,
// GET its state history), users with their addresses and contacts (package
// directory), SMPP accounts and routes (package provision), presence pushed
// by IM servers that do not REGISTER, logins per device, SSO tickets and
// partner contacts (package login). Every endpoint is
// in one table that drives dispatch, 405 answers and the test that keeps
// openapi.json honest. Bad input gets a 400 with a reason; nothing is
// answered 2xx before it is stored. README.md has curl examples that
// curl_test.go runs.
package api
