//go:build race

package soak_test

// raceEnabled: the binary was built with the race detector.
const raceEnabled = true
