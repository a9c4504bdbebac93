package turns

import (
	"slices"
	"testing"
)

// The turns of P6: every order of three ops once, each op following each other
// as often across turns and never itself.
func TestOrders(t *testing.T) {
	for k := range 5 {
		orders := Orders(k)
		if len(orders) == 0 {
			t.Fatalf("Orders(%d) is empty", k)
		}
		for _, o := range orders {
			got := slices.Sorted(slices.Values(o))
			if !slices.Equal(got, identity(k)) {
				t.Errorf("Orders(%d): turn %v is not an order of the %d ops", k, o, k)
			}
		}
	}
	three := Orders(3)
	if len(three) != 6 || !Balanced(three, 3) {
		t.Errorf("Orders(3) = %v: want all 6 orders, balanced", three)
	}
	seen := map[[3]int]bool{}
	for _, o := range three {
		seen[[3]int(o)] = true
	}
	if len(seen) != 6 {
		t.Errorf("Orders(3) = %v: an order repeats", three)
	}
	for _, c := range []struct {
		cycle [][]int
		k     int
		want  bool
	}{
		{[][]int{{0, 1, 2}, {1, 2, 0}, {2, 0, 1}}, 3, false}, // 0 follows 2 twice, 1 once
		{[][]int{{0, 1}, {1, 0}}, 2, false},                  // each follows itself
		{[][]int{{0, 1}}, 2, true},
	} {
		if got := Balanced(c.cycle, c.k); got != c.want {
			t.Errorf("Balanced(%v, %d) = %v, want %v", c.cycle, c.k, got, c.want)
		}
	}
}

func identity(k int) []int {
	out := make([]int, k)
	for i := range out {
		out[i] = i
	}
	return out
}
