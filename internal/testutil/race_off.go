//go:build !race

package testutil

// Race is true in a -race build, whose goroutine stacks and heap are
// several times larger: memory budgets are checked without it.
const Race = false
