package store

import (
	"strconv"
	"testing"
	"time"
)

func TestSeenFilterRemembersOneWindow(t *testing.T) {
	var f seenFilter
	f.init()
	t0 := time.Unix(1700000000, 0)
	w := time.Minute
	if f.mayHave([]byte("k")) {
		t.Fatal("empty filter has a key")
	}
	f.add([]byte("k"), t0, w)
	for i := range 10000 {
		f.add([]byte("other"+strconv.Itoa(i)), t0.Add(w/2), w)
	}
	if !f.mayHave([]byte("k")) {
		t.Fatal("added key not found")
	}
	fp := 0
	for i := range 100000 {
		if f.mayHave([]byte("absent" + strconv.Itoa(i))) {
			fp++
		}
	}
	if fp > 100 { // 0.1%; the expected rate at 10k keys is ~1e-9
		t.Fatalf("%d false positives in 100000", fp)
	}
	f.add([]byte("x"), t0.Add(w), w) // rotation: k is in the previous generation
	if !f.mayHave([]byte("k")) {
		t.Fatal("key forgotten before a full window passed")
	}
	f.add([]byte("y"), t0.Add(2*w), w) // second rotation: k is older than a window
	if f.mayHave([]byte("k")) {
		t.Fatal("key remembered after two windows")
	}
	if !f.mayHave([]byte("x")) || !f.mayHave([]byte("y")) {
		t.Fatal("recent keys forgotten")
	}
}
