// Package parallel splits the work on one large request across the
// machine's cores.
package parallel

import (
	"runtime"
	"sync"
)

// MinChunk is the least number of items a chunk gets: below it, the
// goroutine and the shared cache lines cost more than the split saves.
const MinChunk = 256

// Chunks calls fn on consecutive ranges [lo, hi) covering [0, n), at
// most one per core (GOMAXPROCS) and none shorter than MinChunk, the last
// on the calling goroutine, and returns when every call has. fn must be
// safe to call concurrently on distinct ranges.
//
// A batch of 1000 events is sealed by one gRPC handler; on a server with
// fewer concurrent batches than cores, the others' cores are idle while
// the client waits for it.
func Chunks(n int, fn func(lo, hi int)) {
	k := min(runtime.GOMAXPROCS(0), n/MinChunk)
	if k <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	lo := 0
	for i := range k - 1 {
		hi := n * (i + 1) / k
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, hi)
		lo = hi
	}
	fn(lo, n)
	wg.Wait()
}
