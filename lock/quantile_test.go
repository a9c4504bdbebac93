package lock_test

import (
	"slices"
	"testing"
	"time"

	"github.com/entitylock/entitylock/lock"
)

func TestWaitQuantile(t *testing.T) {
	w := lock.WaitStats{Count: 4, Buckets: make([]int64, len(lock.WaitBuckets())+1)}
	w.Buckets[0] = 2 // ≤1ms
	w.Buckets[3] = 1 // ≤10ms
	w.Buckets[len(lock.WaitBuckets())] = 1
	got := []time.Duration{w.Quantile(0.5), w.Quantile(0.75), w.Quantile(1)}
	want := []time.Duration{time.Millisecond, 10 * time.Millisecond, -1}
	if !slices.Equal(got, want) {
		t.Errorf("quantiles = %v, want %v", got, want)
	}
}
