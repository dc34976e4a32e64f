package ctl

import (
	"strconv"
	"testing"
)

// BenchmarkAppendNDJSON appends 1000 ~300-byte events per iteration
// through "ledgerctl append" (stdin, AppendBatch of 1000) against an
// in-process node over gRPC on 127.0.0.1, fsync on.
//
//	go test -run '^$' -bench AppendNDJSON -benchtime 20x ./ctl/
func BenchmarkAppendNDJSON(b *testing.B) {
	tn := startNodeB(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if r := tn.ctl(ndjson("b"+strconv.Itoa(i), 1000), "append"); r.code != 0 {
			b.Fatal(r)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkVerifyLog runs "ledgerctl verify-log" over a log of 20,000
// entries per iteration.
//
//	go test -run '^$' -bench VerifyLog -benchtime 5x ./ctl/
func BenchmarkVerifyLog(b *testing.B) {
	tn := startNodeB(b)
	const size = 20000
	for i := range size / 1000 {
		if r := tn.ctl(ndjson("v"+strconv.Itoa(i), 1000), "append"); r.code != 0 {
			b.Fatal(r)
		}
	}
	var checked uint64
	b.ReportAllocs()
	for b.Loop() {
		r := tn.ctl("", "verify-log", "--key", tn.vkey())
		if r.code != 0 {
			b.Fatal(r)
		}
		checked += lines[logOut](b, r.stdout)[0].EntriesChecked
	}
	b.ReportMetric(float64(checked)/b.Elapsed().Seconds(), "entries/s")
}
