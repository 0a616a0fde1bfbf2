// Package bridge assembles the gateway from its parts and runs it: New
// builds every part from a config.Config in order (store, presence and
// provisioning, router, logins, the SMPP, SIP, MCP and HTTP edges, the
// listeners) and registers the edges that deliver with the router; Run
// serves until its context ends and then shuts down, the store last.
//
// It is the one place where parts meet: cmd/bridge, the end-to-end tests and
// the bench all run the gateway through it.
package bridge
