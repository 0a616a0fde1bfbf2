package store

import (
	"context"
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
