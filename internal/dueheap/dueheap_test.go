package dueheap

import (
	"container/heap"
	"math/rand/v2"
	"testing"
	"time"
)

type item struct {
	due   time.Time
	index int
}

func (it *item) Due() time.Time { return it.due }
func (it *item) SetIndex(i int) { it.index = i }

// Items come out by due time; each knows its index while in the heap, so
// Remove and Fix work on it, and -1 once out.
func TestOrderAndIndex(t *testing.T) {
	var h Heap[*item]
	base := time.Now()
	items := make([]*item, 200)
	for i := range items {
		items[i] = &item{due: base.Add(time.Duration(rand.IntN(1000)) * time.Millisecond)}
		heap.Push(&h, items[i])
	}
	for i, it := range h {
		if it.index != i {
			t.Fatalf("item at %d says %d", i, it.index)
		}
	}
	gone := items[17]
	heap.Remove(&h, gone.index)
	if gone.index != -1 {
		t.Fatalf("removed item's index %d", gone.index)
	}
	items[3].due = base.Add(-time.Second)
	heap.Fix(&h, items[3].index)
	if first := heap.Pop(&h).(*item); first != items[3] || first.index != -1 {
		t.Fatalf("first out %+v, want the item moved to the front", first)
	}
	last := base.Add(-time.Hour)
	for h.Len() > 0 {
		it := heap.Pop(&h).(*item)
		if it.due.Before(last) {
			t.Fatalf("out of order: %v after %v", it.due, last)
		}
		last = it.due
	}
}
