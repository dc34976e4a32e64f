package parallel

import (
	"sync"
	"testing"
)

// TestChunksCoverOnce: every index is visited exactly once, in ranges of
// at least MinChunk (but for a short n), whatever n.
func TestChunksCoverOnce(t *testing.T) {
	for _, n := range []int{0, 1, MinChunk - 1, MinChunk, 2*MinChunk - 1, 2 * MinChunk, 1000, 10007} {
		seen := make([]int, n)
		var mu sync.Mutex
		var ranges [][2]int
		Chunks(n, func(lo, hi int) {
			mu.Lock()
			ranges = append(ranges, [2]int{lo, hi})
			mu.Unlock()
			for i := lo; i < hi; i++ {
				seen[i]++
			}
		})
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("n=%d: index %d visited %d times", n, i, c)
			}
		}
		for _, r := range ranges {
			if len(ranges) > 1 && r[1]-r[0] < MinChunk {
				t.Fatalf("n=%d: range %v shorter than %d", n, r, MinChunk)
			}
		}
	}
}
