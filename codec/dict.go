package codec

// presetDict primed the LZ coder of format version 2 (lz.go, primed): the
// initial history of every frame, and the models as they are after coding
// it. The version 2 decoder needs it as it is. Version 3 primes from
// dict3/ instead.
const presetDict = `SIP/2.0/UDP ;branch=z9hG4bK;rport;received=;transport=tcp;lr>;tag=;expires=3600;q=1.0` +
	`Digest username="",realm="",nonce="",uri="sip:",response="",algorithm=MD5,cnonce="",opaque="",qop=auth,nc=00000001` +
	`<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:"><tuple id=""><status><basic>open</basic></status></tuple></presence>` +
	`<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id></message-id><datetime></datetime><delivery-notification><status><delivered/></status></delivery-notification></imdn>` +
	`<is-composing><state>active</state></is-composing>` +
	"v=0\r\no=- 0 0 IN IP4 \r\ns=session\r\nc=IN IP4 \r\nt=0 0\r\nm=message  sip sip:\r\n" +
	"v=0\r\no=-0 0 IN 127.0.0.1:\r\ns=session\r\nc=IN IP4 127.0.0.1:\r\nt=0 0\r\nm=message  sip sip:" +
	`<args><device accept-language="default" machine-code="" /><caps value="" /><events value="" /><user-info mobile-no="" user-id=""><personal version="" attributes="v4default" /><custom-config version="" /><contact-list version="" buddy-attributes="v4default" /></user-info><credentials domains="fetion.com.cn" /><presence><basic value="400" desc="" /></presence></args>` +
	`<args><personal attributes="all" /><services version="" attributes="all" /><config version="" attributes="all" /><mobile-device attributes="all" /></args>` +
	`<results><contacts><contact uri="sip:@fetion.com.cn;p=" status-code="200"><personal version="" user-id="" nickname="" gender="0" impresa="" mobile-no="" name="" nation="CN" province="" city="" ivr-enabled="1" portrait-crc="0" provisioning="1" /></contact></contacts></results>` +
	`<args><contacts attributes="all"><contact uri="sip:@fetion.com.cn;p=" /></contacts></args>` +
	`<args><contacts><buddies><buddy uri="sip:@fetion.com.cn;p=" buddy-lists="1" desc="" expose-mobile-no="1" expose-name="1" /></buddies></contacts></args>` +
	`<args><contacts><mobile-buddies><mobile-buddy uri="tel:" buddy-lists="1" desc="" invite="1" /></mobile-buddies></contacts></args>` +
	`<events><event type="deregistered"/></events><events><event type="BuddyApplication"><application uri="sip:@fetion.com.cn;p=" desc="" type="1" /></event></events>` +
	`<events><event type="ServiceResult"><results><personal version="" /></results></event></events>` +
	`<events><event type="UserEntered"><member uri="sip:@fetion.com.cn;p=" /></event></events><events><event type="UserLeft"><member uri="sip:@fetion.com.cn;p=" /></event></events>` +
	`<results><presence><basic value="400" desc="" /></presence></results><args><presence><basic value="100" /></presence></args>` +
	`<results><contacts version=""><buddy-lists><buddy-list id="1" name="" /><buddy-list id="2" name="" /></buddy-lists><buddies>` +
	`<buddy uri="sip:@fetion.com.cn;p=" local-name="" buddy-lists="1" relation-status="1" online-notify="1" /></buddies>` +
	`<mobile-buddies><mobile-buddy uri="tel:" local-name="" buddy-lists="1" relation-status="1" /></mobile-buddies><chat-friends /><blacklist /></contacts></results>` +
	`<args><contacts><buddy-lists /><buddies attributes="all" /><mobile-buddies attributes="all" /><chat-friends /><blacklist /></contacts></args>` +
	`<results><client public-ip=""><custom-config version=""></custom-config></client><user-info personal-info-version="" contact-version="" permission-version=""/><presence result="200"/></results>` +
	`<args><device type="PC" version="" client-version="3.2.0540" /><caps value="simple-im;im-session;temp-group;personal-group" /><events value="contact;permission;system-message;personal-group" /><oem-tag value="cmcc.sjb0.inet.0024" /><user-info attributes="all" /><presence><basic value="400" desc="" /></presence></args>` +
	`<results><subscription><contacts><contact uri="sip:@fetion.com.cn;p=" status-code="200" /></contacts><presence><basic attributes="all" /><personal attributes="all" /><extended types="sms;location;listening;ring-back-tone" /></presence></subscription></results>` +
	`<args><subscription><contacts><contact uri="sip:@fetion.com.cn;p=" /></contacts><presence><basic attributes="all" /><personal attributes="all" /><extended types="sms;location;listening;ring-back-tone" /></presence></subscription></args>` +
	`<events><event type="PresenceChanged"><presence uri="sip:@fetion.com.cn;p="><basic device-id="" value="400" desc="" device-type="PC" device-caps="simple-im,im-session,temp-group,personal-group" />` +
	`<personal nickname="" impresa="" portrait-crc="0" /><extended type="sms">0.0:0:0</extended><extended type="listening"></extended><extended type="location"><location city="" distance="" /></extended></presence></event></events>` +
	`<args><presence><basic value="400" /></presence></args>` +
	`Digest algorithm="MD5-sess;SHA1-sess",nonce=""Digest algorithm="SHA1-sess",response="",cnonce="",salt=""` +
	`<Font Face='Arial' Color='-16777216' Size='10.5'></Font>`
