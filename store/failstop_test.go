package store

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRemovedDirFailsStop: once its directory is removed, the store
// acknowledges nothing (the commit log is an unlinked file no restart
// could read), Healthy says why, Failed is closed, and Close returns
// within closeAbandon and a margin although badger's flush never succeeds.
func TestRemovedDirFailsStop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	db, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := accept(db, ctx, newMsg(1)); err != nil {
		t.Fatalf("before removal: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := accept(db, ctx, newMsg(2)); err == nil {
		t.Fatal("a message was acknowledged after the data directory was removed")
	}
	select {
	case <-db.Failed():
	case <-time.After(5 * time.Second):
		t.Fatal("Failed not closed")
	}
	if err := db.Healthy(); err == nil {
		t.Fatal("Healthy after removal")
	}
	start := time.Now()
	err = db.Close()
	if took := time.Since(start); took > closeAbandon+2*time.Second {
		t.Fatalf("Close took %v", took)
	}
	if err == nil {
		t.Fatal("Close of a failed store returned nil")
	}
	t.Logf("Close: %v", err)
}

// TestRenamedDirFailsStop: a data directory renamed away keeps its commit
// log linked, so commits stay durable there for the moment it takes the
// committer's periodic look by name (pathsEvery) to notice; after that the
// store acknowledges nothing.
func TestRenamedDirFailsStop(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	db, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := accept(db, ctx, newMsg(1)); err != nil {
		t.Fatalf("before the rename: %v", err)
	}
	if err := os.Rename(dir, filepath.Join(root, "moved")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(pathsEvery + 10*time.Millisecond)
	if err := accept(db, ctx, newMsg(2)); err == nil {
		t.Fatalf("a message was acknowledged %v after the data directory was renamed away", pathsEvery+10*time.Millisecond)
	}
	select {
	case <-db.Failed():
	case <-time.After(5 * time.Second):
		t.Fatal("Failed not closed")
	}
}

// BenchmarkFailStopCheck: what the committer spends before each batch to
// know its commit log can still be read after a restart; by name (two
// stats and an access) or by the open file's link count, the names looked
// up every pathsEvery. Compare with
// `go test -run '^$' -bench FailStopCheck -count 6 ./store/ | benchstat -col /by -`.
func BenchmarkFailStopCheck(b *testing.B) {
	dir := b.TempDir()
	f, err := os.Create(filepath.Join(dir, walFile))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fs := newFailStop(dir, slog.New(slog.DiscardHandler))
	if err := fs.arm(); err != nil {
		b.Fatal(err)
	}
	b.Run("by=name", func(b *testing.B) {
		for b.Loop() {
			fs.check()
		}
	})
	b.Run("by=fd", func(b *testing.B) {
		start := time.Now()
		i := 0
		for b.Loop() {
			// A batch every 1.4 ms of commits, as at 20,000 msg/s SMS→IM.
			fs.checkLog(f, start.Add(time.Duration(i)*1400*time.Microsecond))
			i++
		}
	})
	if err := fs.failed(); err != nil {
		b.Fatal(err)
	}
}
