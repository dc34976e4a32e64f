//go:build !unix

package ledger

// allocWords returns n zeroed words on the Go heap where anonymous
// mappings are not available (see offheap_unix.go).
func allocWords(n int) (words []uint64, free func()) {
	return make([]uint64, n), func() {}
}
