// Package api is the bridge's HTTP face on fasthttp: health and readiness for
// orchestrators, Prometheus metrics, and the message API (POST a message into
// the router, GET its state history). Bad input gets a 400 with a reason;
// nothing is answered 2xx before the router has stored it.
package api
