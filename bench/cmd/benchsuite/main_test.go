package main

import (
	"slices"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		v    []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{4, 1}, 2.5},
	} {
		if got := median(slices.Clone(tc.v)); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// TestRoundOrder: every round runs every benchmark once, every other
// round in reverse, so that neither half of a pair always goes first.
func TestRoundOrder(t *testing.T) {
	for k, want := range map[int][]int{1: {0, 1, 2}, 2: {2, 1, 0}, 3: {0, 1, 2}, 4: {2, 1, 0}} {
		if got := roundOrder(k, 3); !slices.Equal(got, want) {
			t.Errorf("round %d: %v, want %v", k, got, want)
		}
	}
}

// TestEncryptionCost pairs the runs of the same round.
func TestEncryptionCost(t *testing.T) {
	rep := func(evs, cpu float64) report { return report{EventsPerSecond: evs, ServerCPUPerEv: cpu} }
	got := encryptionCost([]result{
		{item: item{name: "append-batch-1000"}, reports: []report{rep(80, 22), rep(90, 21)}},
		{item: item{name: "append-batch-1000-noenc"}, reports: []report{rep(100, 18), rep(100, 18)}},
	})
	for _, want := range []string{"20.0% (+4.0 µs/event)", "10.0% (+3.0 µs/event)", "median 15.0%"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}
