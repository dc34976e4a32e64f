package fieldcrypt

import "sync/atomic"

// formUse decides, per event field, whether Transform caches the stored
// forms of its values (formCache). A field whose values are new in
// nearly every event, like a session id, gains nothing from the cache
// and pays for it: a comparison per lookup, and an allocation and two
// atomic stores per value, which also push the subject's last values out
// of memory sooner. Each batch counts its hits and misses per field; a
// field that hit less than one time in eight in a batch of at least 64
// of its values is no longer looked up nor cached, and every 16th batch
// looks again at every field.
type formUse struct {
	batches atomic.Uint64
	skip    [numEncryptable]atomic.Bool
}

// formTally is one batch's count.
type formTally struct {
	probe        bool
	hits, misses [numEncryptable]int32
}

const (
	formProbeEvery = 16
	formMinSample  = 64
	formMinHitRate = 8 // at least one hit in formMinHitRate values
)

func (u *formUse) start() formTally {
	return formTally{probe: u.batches.Add(1)%formProbeEvery == 0}
}

// use reports whether field fi's forms are looked up and cached in this
// batch.
func (u *formUse) use(t *formTally, fi int) bool { return t.probe || !u.skip[fi].Load() }

// finish records the batch's verdicts.
func (u *formUse) finish(t *formTally) {
	for fi := range numEncryptable {
		if n := t.hits[fi] + t.misses[fi]; n >= formMinSample {
			u.skip[fi].Store(t.hits[fi]*formMinHitRate < n)
		}
	}
}
