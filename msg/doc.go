// Package msg defines the one message type that flows through the bridge core,
// and the normalized party addresses the router decides on.
//
// Protocol adapters (smpp, sip, mcp, api) translate their wire forms into a
// Message at the edge; nothing protocol-specific lives here.
package msg
