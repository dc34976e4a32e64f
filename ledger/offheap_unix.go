//go:build unix

package ledger

import (
	"syscall"
	"unsafe"
)

// allocWords returns n zeroed words outside the Go heap and the function
// that frees them. Large, long-lived and pointer-free (the id filter:
// 31 MiB at 10M ids) is what belongs there: on the Go heap it also
// raised the garbage collector's heap goal by as much again, and so the
// peak RSS. Pages are only committed as they are first written.
func allocWords(n int) (words []uint64, free func()) {
	if n == 0 {
		return nil, func() {}
	}
	b, err := syscall.Mmap(-1, 0, n*8, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]uint64, n), func() {} // no mapping: the heap will do
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), n), func() { syscall.Munmap(b) }
}
