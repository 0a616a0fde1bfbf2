package login

import (
	"context"
	"sync"
)

// UserStore creates IM users for external accounts on first login. The
// bridge's store can implement it; MemoryUsers is the default.
type UserStore interface {
	// Ensure makes sure user exists, creating it with display if not, and
	// reports whether it was created now.
	Ensure(ctx context.Context, user, display string) (created bool, err error)
}

// MemoryUsers is an in-memory UserStore.
type MemoryUsers struct {
	mu sync.Mutex
	m  map[string]string
}

// NewMemoryUsers returns an empty store.
func NewMemoryUsers() *MemoryUsers { return &MemoryUsers{m: make(map[string]string)} }

// Ensure implements UserStore.
func (u *MemoryUsers) Ensure(_ context.Context, user, display string) (bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.m[user]; ok {
		return false, nil
	}
	u.m[user] = display
	return true, nil
}

// Lookup returns a user's display name.
func (u *MemoryUsers) Lookup(user string) (display string, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	display, ok = u.m[user]
	return display, ok
}

// Len is the number of users.
func (u *MemoryUsers) Len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.m)
}
