//go:build !race

package c2s

// raceEnabled: the race detector is on, and memory figures mean nothing.
const raceEnabled = false
