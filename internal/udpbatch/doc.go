// Package udpbatch reads and writes UDP datagrams many to a system call:
// recvmmsg and sendmmsg on Linux, one datagram a call elsewhere.
//
// A Reader takes every datagram queued on its socket in one call and hands
// them out one at a time; a Writer takes copies of the datagrams queued
// since its last flush and sends them in one call. A datagram the kernel
// refuses is reported to the Writer's failure callback under the tag it was
// queued with, and the others go on.
//
// The load generator's SIP responder reads MESSAGEs and answers them this
// way: a system call per datagram was most of the generator's CPU, taken
// from the bridge on the same cores (PERFORMANCE.md, the causes under
// "Stalls"). The bridge does not use it: its MESSAGEs leave from many
// goroutines one at a time, and sending them from one goroutine in batches,
// and reading their answers in batches, made no measurable difference to
// its CPU per message (PERFORMANCE.md, "Tried and not kept").
package udpbatch
