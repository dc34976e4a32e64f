package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records latencies in a log-linear layout, the idea of
// HdrHistogram: values below 2^subBits are counted exactly, and every
// octave above is cut into 2^(subBits-1) equal buckets, so a bucket's
// width is at most 1/2^(subBits-1) of its values (0.4% with subBits 9).
// Recording is one bits.Len64 and an increment; the layout covers the
// whole uint64 range, so nothing is ever clipped.
//
// It is written here rather than imported: it is 100 lines, the
// percentile rule is ours to state (the upper edge of the bucket, capped
// by the exact maximum, so percentiles never flatter), and
// github.com/HdrHistogram/hdrhistogram-go has had no release since 2021.
//
// A Histogram is not safe for concurrent use: give each client its own and
// Merge them at the end.
type Histogram struct {
	counts   []uint64
	n        uint64
	sum      float64
	min, max uint64
}

const (
	subBits  = 9
	subCount = 1 << subBits // exact values 0..subCount-1
	halfSub  = subCount / 2 // buckets per octave above
	nBuckets = subCount + (64-subBits)*halfSub
)

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, nBuckets), min: math.MaxUint64}
}

// bucketOf maps a value to its bucket index.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits // >= 1
	return shift*halfSub + int(v>>shift)
}

// bucketHigh is the largest value that falls in bucket i.
func bucketHigh(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	shift := i/halfSub - 1
	top := uint64(i - shift*halfSub)
	return (top+1)<<shift - 1
}

// Record adds one value (nanoseconds for latencies).
func (h *Histogram) Record(v uint64) {
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// RecordDuration adds one latency; negative durations count as zero.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(uint64(max(d, 0))) }

// Merge adds all of o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest recorded value (0 when empty).
func (h *Histogram) Max() uint64 { return h.max }

// Min is the smallest recorded value (0 when empty).
func (h *Histogram) Min() uint64 {
	if h.n == 0 {
		return 0
	}
	return h.min
}

// Mean is the exact mean of the recorded values.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns the value at quantile q (0..1): the upper edge of the
// bucket holding the ceil(q*n)-th smallest value, never above the exact
// maximum. The result is at most 0.4% above the true value and never
// below it.
func (h *Histogram) Quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketHigh(i), h.max)
		}
	}
	return h.max
}
