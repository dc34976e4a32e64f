package ledger

import "time"

// StoreHealth is what a health check reports about the store.
type StoreHealth struct {
	// Err is set when the store has stopped accepting writes after a
	// failed one (see Apply), or is closed.
	Err error
	// ReadErr and ReadTime are the outcome of reading the newest entry.
	ReadErr  error
	ReadTime time.Duration
	// Pebble's view of itself.
	DiskUsageBytes        uint64
	L0Files               int64
	L0Sublevels           int32
	CompactionsInProgress int64
}

// Health checks the store: its failure state, a read of the newest
// entry, and Pebble's metrics.
func (s *Store) Health() StoreHealth {
	var h StoreHealth
	if errp := s.failed.Load(); errp != nil {
		h.Err = *errp
	}
	db := s.db
	if db == nil {
		h.Err = ErrClosed
		return h
	}
	if size := s.State().Size; size > 0 {
		start := time.Now()
		_, h.ReadErr = s.Leaf(size - 1)
		h.ReadTime = time.Since(start)
	}
	m := db.Metrics()
	h.DiskUsageBytes = m.DiskSpaceUsage()
	h.L0Files = m.Levels[0].TablesCount
	h.L0Sublevels = m.Levels[0].Sublevels
	h.CompactionsInProgress = m.Compact.NumInProgress
	return h
}
