// Package tlsconf holds the bridge's TLS material: its own certificate and
// key, read from PEM files, served to every TLS listener through
// GetCertificate so that Reload swaps them (on SIGHUP) without closing a
// listener; and the client side's trusted roots (a CA file or the system's).
// Every config it makes accepts TLS 1.2 and later only.
package tlsconf
