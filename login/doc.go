// Package login holds the bridge's non-ordinary ways to log in to IM, and the
// single sign-on tickets a logged-in user can take to a third party.
//
// The form of the login name picks the path (see Classify):
//
//   - "alice" or "alice@DOMAIN" (DOMAIN = the bridge's SIP domain, or any
//     domain that is not a configured social site): an ordinary user of the
//     bridge, checked against the bridge's own HA1 table.
//   - "alice#site": delegated login for partner website "site". The bridge
//     asks the site's verify endpoint (Partners) and admits only on its
//     "allow". Unknown or disabled sites are refused without any HTTP call.
//   - "account@site" where site is a configured social site: social-account
//     login; the password is a token signed by the site with HMAC-SHA256
//     (Social). The account becomes an IM user, named and created on first
//     login by the UserStore (the bridge's directory; MemoryUsers in tests).
//
// SIP digest hides the password from the bridge, so two SIP paths exist:
// VerifyDigest forwards the digest parameters to a partner site, which checks
// them against the password it knows; and Credentials issues a short-lived
// SIP password per device after a password login over HTTPS, and the SIP and
// MCP edges accept any of a user's live issued credentials
// (Authenticator.Issued, next to Authenticator.HA1 for ordinary users).
//
// With a KV store (the bridge's), used social session ids and issued
// credentials survive a restart; `bridge sso verify --seen FILE`
// (RunSSOCLI, SeenFile) makes SSO tickets single-use across processes.
//
// Issuer seals SSO tickets with AES-256-GCM for configured services; the
// third party opens them with the tiny sub-package login/ssoticket.
//
// The reference partner server lives in login/partnersite and runs as
// cmd/partnersite. README.md has a worked example per login kind.
package login
