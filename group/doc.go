// Package group is group chat: groups whose members are any of a person's
// addresses (numbers, SIP AORs, XMPP JIDs), reachable from every network.
//
// A group is a number: the configured access number plus a per-group
// extension (1065800 + 0042). Members post by sending to it from SMS, SIP,
// XMPP or the handset link, and its copies come from it, so a reply goes
// back to the group. A message to the access number alone is a command
// (JOIN name, #create name) or a post to the group its sender last received
// from.
//
// The Service sits in front of the router as the edges' msg.Stager: what is
// not for a group passes through untouched. A post becomes one message per
// member, staged with the router, and the poster is acknowledged once every
// copy is durable; the router then delivers each by the presence rule (IM
// where the member is online, else SMS, else parked). Commands (Kamailio imc
// style "#create", SMS keywords "JOIN name") change the group durably before
// their answer, itself a message to the sender, is staged.
//
// Robots see the posts of their groups through the Robots hook and answer
// with PostAs; a robot never delays a post.
package group
