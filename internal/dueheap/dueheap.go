// Package dueheap is a container/heap of items ordered by due time, each of
// which knows its index, so that it can be removed or fixed in place: the
// router's retries and parked messages, the delivery reports' queues.
package dueheap

import "time"

// Item is what a Heap holds: a pointer type whose due time orders it and
// which keeps the index the heap gives it (-1 once popped).
type Item interface {
	Due() time.Time
	SetIndex(i int)
}

// Heap implements heap.Interface; use it through container/heap.
type Heap[T Item] []T

func (h Heap[T]) Len() int           { return len(h) }
func (h Heap[T]) Less(i, k int) bool { return h[i].Due().Before(h[k].Due()) }

func (h Heap[T]) Swap(i, k int) {
	h[i], h[k] = h[k], h[i]
	h[i].SetIndex(i)
	h[k].SetIndex(k)
}

func (h *Heap[T]) Push(x any) {
	t := x.(T)
	t.SetIndex(len(*h))
	*h = append(*h, t)
}

func (h *Heap[T]) Pop() any {
	old := *h
	n := len(old) - 1
	t := old[n]
	var zero T
	old[n] = zero
	t.SetIndex(-1)
	*h = old[:n]
	return t
}
