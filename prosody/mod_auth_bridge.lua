-- Authenticates XMPP logins against the bridge, so that the accounts of
-- social and partner sites log in to XMPP with their site's signed token as
-- the password (SASL PLAIN, over TLS only: saslauth refuses PLAIN without).
--
--   authentication = "bridge"
--   bridge_auth_url = "http://127.0.0.1:8080/v1/xmpp/auth"
--   bridge_auth_token = "an API token of the bridge"
--
-- The bridge checks signature, expiry and replay, creates the user in its
-- directory at the first login and binds the JID to it (POST, JSON body
-- {user, host, password}; 200 admits, anything else refuses).

local async = require "util.async";
local http = require "net.http";
local json = require "util.json";
local new_sasl = require "util.sasl".new;

local url = module:get_option_string("bridge_auth_url");
local token = module:get_option_string("bridge_auth_token");
if not url or not token then
	error("mod_auth_bridge needs bridge_auth_url and bridge_auth_token");
end
local host = module.host;

local provider = {};

function provider.test_password(username, password)
	local body = json.encode({ user = username, host = host, password = password });
	local res, err = async.wait_for(http.request(url, {
		method = "POST";
		body = body;
		headers = {
			["Content-Type"] = "application/json";
			["Authorization"] = "Bearer " .. token;
		};
	}));
	if not res then
		module:log("warn", "bridge unreachable for the login of %s: %s", username, tostring(err));
		return nil;
	end
	if res.code ~= 200 then
		module:log("info", "bridge refused the login of %s: %d %s", username, res.code, tostring(res.body));
		return nil;
	end
	return true;
end

-- Passwords live at the sites, not here.
function provider.get_password() return nil, "passwords are checked by the bridge"; end
function provider.set_password() return nil, "passwords are checked by the bridge"; end
function provider.create_user() return nil, "users are created by the bridge at the first login"; end
function provider.delete_user() return nil, "users are deleted at the bridge"; end
function provider.user_exists() return true; end
function provider.users() return function() return nil; end; end

function provider.get_sasl_handler()
	return new_sasl(host, {
		plain_test = function(_, username, password)
			return provider.test_password(username, password), true;
		end;
	});
end

module:provides("auth", provider);
