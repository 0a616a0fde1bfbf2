//go:build !linux

package store

import (
	"errors"
	"time"
)

var errNoPageOut = errors.New("store: paging out mapped files is built for Linux only")

// pageOutCold is Linux's; elsewhere the kernel reclaims mapped files
// under memory pressure only.
func pageOutCold(string, time.Time) error { return errNoPageOut }
