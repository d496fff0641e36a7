//go:build !race

package server_test

// raceEnabled: the race detector multiplies memory use, so RSS bounds are
// only asserted without it (.ci/run runs those tests both ways).
const raceEnabled = false
