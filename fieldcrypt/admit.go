package fieldcrypt

// Keys enter the first cache tier only when they come back often. The
// first tier holds maxCached keys (its size is set by the GC's cost of
// marking them); a subject seen once in a while used to push a frequent
// one out, which then had to be reopened from the second tier, and have
// its forms sealed again, on its next event. With the bench's workload
// (50,000 users drawn from a Zipf distribution, s = 1.1, where the most
// frequent 4,096 users make 87% of the user events; plus 2% of events
// by new api keys and a tail of users seen for the first time) 0.155
// keys were reopened per event. Now a new subject's key waits in the
// second tier, and a key enters the first on its admitReopens-th
// reopening within about an epoch (each epoch halves the counts): 0.095
// reopenings per event, and Transform went from 2.5 to 2.0 µs per event
// in the server (profiles of 30 s batch runs). Two reopenings made it
// 0.101, four 0.116.
const (
	admitReopens = 3
	admitEpoch   = 8 * maxCached // transformed events
)

// admit counts the reopening of each subject's key (keys, from the
// second tier) and caches in the first tier those reopened often, if no
// rotation or erasure happened since gen was read.
func (c *Crypter) admit(gen string, subjects []string, keys map[string]*dataKey) {
	epoch := uint16(c.events.Load() / admitEpoch)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	for _, s := range subjects {
		k := c.subjectTierKey(s)
		ck, ok := c.cold[k]
		if !ok {
			continue // dropped from the tier meanwhile
		}
		if age := epoch - ck.epoch; age >= 8 {
			ck.reopened = 0
		} else {
			ck.reopened >>= age
		}
		ck.epoch = epoch
		if ck.reopened < 255 {
			ck.reopened++
		}
		c.cold[k] = ck
		if ck.reopened >= admitReopens {
			c.cacheDataKeyLocked(s, keys[s])
		}
	}
}

// cacheNewDataKey puts a new subject's key in the second tier, as if
// reopened once, and by its id in the first (Reveal finds it there
// before its write, queued for the next batch, is in the store).
func (c *Crypter) cacheNewDataKey(gen, subject string, dk *dataKey) {
	epoch := uint16(c.events.Load() / admitEpoch)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	c.cacheByIDLocked(dk)
	if ck, ok := coldOf(dk); ok {
		ck.reopened, ck.epoch = 1, epoch
		putCold(c.cold, c.subjectTierKey(subject), ck)
	}
}
