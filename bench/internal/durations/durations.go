// Package durations summarises samples of timed calls for the harness's
// tools.
package durations

import (
	"fmt"
	"slices"
	"time"
)

// Quantile returns the q-quantile (0 ≤ q ≤ 1) of d, nearest rank; d must
// not be empty.
func Quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// Mean returns the mean of d; d must not be empty.
func Mean(d []time.Duration) time.Duration {
	var t time.Duration
	for _, x := range d {
		t += x
	}
	return t / time.Duration(len(d))
}

// Micros formats d in whole microseconds ("123µs").
func Micros(d time.Duration) string {
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}
