// Package udpbatch reads and writes UDP datagrams many to a system call:
// recvmmsg and sendmmsg on Linux, one datagram a call elsewhere.
//
// At tens of thousands of SIP messages a second over UDP, a system call per
// datagram is a large share of the bridge's CPU, and of the load generator's
// beside it (PERFORMANCE.md, "UDP many datagrams a call"). A Reader takes
// every datagram queued on its socket in one call and hands them out one at
// a time. A Writer copies each datagram it is given into a queue; the
// goroutine that finds no send under way sends the queue, and what other
// goroutines queue meanwhile, in as few calls as it takes. Nobody waits for
// anybody else's send: a datagram that cannot be sent is reported to the
// Writer's failure callback under the tag it was queued with.
package udpbatch
