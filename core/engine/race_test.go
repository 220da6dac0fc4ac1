//go:build race

package engine

// raceEnabled: under the race detector sync.Pool drops items at random, so pooled
// buffers are allocated again and allocation counts say nothing.
const raceEnabled = true
