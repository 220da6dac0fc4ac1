//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package main

import "os"

// lockFolder reports errNoLocks: on this system (Windows among others) freelunch takes no
// folder locks, so it never judges a temporary folder stale and never removes one.
func lockFolder(dir string) (*os.File, error) { return nil, errNoLocks }
