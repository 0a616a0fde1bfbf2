//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package login

import "errors"

func lockFile(string) (func(), error) {
	return nil, errors.New("file locking is not supported on this system")
}
