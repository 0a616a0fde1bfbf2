-- Prosody for the lab (docker-compose.yml; the tests write their own).
-- Users of XMPP_DOMAIN log in on 5222 with STARTTLS; accounts of social
-- sites log in at social.XMPP_DOMAIN with their site's token, checked by
-- the bridge (mod_auth_bridge.lua); the bridge attaches as the component
-- sms.XMPP_DOMAIN on 5347.
local domain = ENV_XMPP_DOMAIN or "bridge.test"

plugin_paths = { "/etc/prosody/bridge" }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "offline" }
modules_disabled = { "s2s" }
authentication = "internal_hashed"
storage = "internal"
data_path = "/var/lib/prosody"
c2s_require_encryption = true
-- Only the lab's private network reaches the component port; its secret is
-- all that guards it.
component_interfaces = { "*" }
component_ports = { 5347 }
certificates = "/etc/prosody/certs"
log = { info = "*console" }
-- The bridge confirms each delivery with a ping written after the message;
-- with Nagle on, Prosody holds it for the client's delayed ACK (~40 ms).
network_settings = { nagle = false }
-- Lua 5.4's generational collector (Prosody 0.12): the default incremental
-- one nearly doubles Prosody's CPU per message at thousands of messages/s.
gc = { mode = "generational" }

VirtualHost(domain)

VirtualHost("social." .. domain)
	authentication = "bridge"
	bridge_auth_url = ENV_BRIDGE_AUTH_URL or "http://127.0.0.1:8080/v1/xmpp/auth"
	bridge_auth_token = ENV_BRIDGE_API_TOKEN

Component("sms." .. domain)
	component_secret = ENV_XMPP_SECRET
