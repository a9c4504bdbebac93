// Package turns orders the rows of a benchmark that run in turns of one
// operation each, so that no row gains from the row run before it.
package turns

// Orders returns a cycle of turns of k ops: for 3 ops, every order of
// them once, arranged so that, counting the step from one turn's last op
// to the next turn's first, each op follows each other op equally often
// and never itself (and holds each place in a turn equally often); for
// other counts, the ops in turn rotated.
func Orders(k int) [][]int {
	if k == 0 {
		return [][]int{{}}
	}
	perms := permutations(k)
	if k == 3 {
		var cycle [][]int
		used := make([]bool, len(perms))
		var search func() bool
		search = func() bool {
			if len(cycle) == len(perms) {
				return Balanced(cycle, k)
			}
			for i, p := range perms {
				if used[i] || len(cycle) > 0 && cycle[len(cycle)-1][k-1] == p[0] {
					continue
				}
				used[i], cycle = true, append(cycle, p)
				if search() {
					return true
				}
				used[i], cycle = false, cycle[:len(cycle)-1]
			}
			return false
		}
		if search() {
			return cycle
		}
	}
	rotated := make([][]int, k)
	for t := range rotated {
		for j := range k {
			rotated[t] = append(rotated[t], (t+j)%k)
		}
	}
	return rotated
}

// Balanced reports whether, in the turns of cycle run over and over, each
// of k ops follows each other op equally often and never itself.
func Balanced(cycle [][]int, k int) bool {
	var seq []int
	for _, t := range cycle {
		seq = append(seq, t...)
	}
	follows := make([][]int, k)
	for a := range follows {
		follows[a] = make([]int, k)
	}
	for i, op := range seq {
		follows[seq[(i+len(seq)-1)%len(seq)]][op]++
	}
	want := -1
	for a := range k {
		for b := range k {
			switch {
			case a == b && follows[a][b] != 0:
				return false
			case a != b && want < 0:
				want = follows[a][b]
			case a != b && follows[a][b] != want:
				return false
			}
		}
	}
	return true
}

// permutations returns every order of 0, …, k-1.
func permutations(k int) [][]int {
	if k == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(k - 1) {
		for at := 0; at <= len(p); at++ {
			q := append(append(append([]int{}, p[:at]...), k-1), p[at:]...)
			out = append(out, q)
		}
	}
	return out
}
