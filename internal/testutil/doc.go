// Package testutil holds helpers shared by this module's tests, chiefly
// waiting on a condition instead of sleeping for a fixed time.
package testutil
