package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

// Check is what the run verified after loading the server.
type Check struct {
	// AckedAppends is how many appends the server acknowledged during the
	// run (preload and warm-up included); Duplicates were acknowledged as
	// already present (client ids only).
	AckedAppends int64 `json:"ackedAppends"`
	Duplicates   int64 `json:"duplicates,omitempty"`
	// Method is "full" (every entry of the tree read back and the root
	// recomputed from them) or "sample" (Checked acknowledged appends
	// proven by inclusion proofs against the final checkpoint).
	Method  string `json:"method"`
	Checked int64  `json:"checked"`
	// Lost counts acknowledged appends that are missing or hold other
	// bytes (in the sample, for "sample").
	Lost int64 `json:"lost"`
	// RootRecomputed: the root of all entries read equals the final
	// signed root ("full" only).
	RootRecomputed bool `json:"rootRecomputed"`
	// FirstSize and FinalSize are the tree sizes of the first and final
	// checkpoints; Consistent says the consistency proof between them
	// verified (on every node for a cluster).
	FirstSize  uint64 `json:"firstSize"`
	FinalSize  uint64 `json:"finalSize"`
	Consistent bool   `json:"consistent"`
	// IDsChecked acknowledged appends were read back by id.
	IDsChecked int `json:"idsChecked"`
	// VerifierKey says where the checkpoint key came from: "embedded",
	// "given" or "server (trust on first use)".
	VerifierKey string `json:"verifierKey"`
	// LeafBytesMean is the mean size of the stored leaves read back.
	LeafBytesMean float64 `json:"leafBytesMean,omitempty"`
	// Failures says what failed, in words.
	Failures []string `json:"failures,omitempty"`
}

func (c *Check) failf(format string, args ...any) {
	c.Failures = append(c.Failures, fmt.Sprintf(format, args...))
}

// checker verifies a finished run against the server.
type checker struct {
	s        *shared
	apis     []pb.LedgerClient // one per address, first is the reference
	progress func(done, total uint64)
}

// getCheckpoint fetches and verifies the checkpoint of one node.
func (k *checker) getCheckpoint(ctx context.Context, api pb.LedgerClient) (*ledger.Checkpoint, error) {
	resp, err := api.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	if err != nil {
		return nil, err
	}
	if resp.Checkpoint == nil {
		return nil, fmt.Errorf("bench: no checkpoint in the answer")
	}
	return ledger.OpenCheckpoint(resp.Checkpoint.Note, k.s.verifier, k.s.origin)
}

// waitCheckpoint polls until the node's checkpoint covers size entries.
func (k *checker) waitCheckpoint(ctx context.Context, api pb.LedgerClient, size uint64) (*ledger.Checkpoint, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		cp, err := k.getCheckpoint(ctx, api)
		if err == nil && cp.Size >= size {
			return cp, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("checkpoint stuck at size %d, want %d", cp.Size, size)
			}
			return nil, fmt.Errorf("bench: waiting for a checkpoint of size %d: %w", size, err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// consistent proves that to extends from.
func consistent(ctx context.Context, api pb.LedgerClient, from, to *ledger.Checkpoint) error {
	if from.Size == 0 {
		return merkle.VerifyConsistency(0, to.Size, nil, from.Root, to.Root)
	}
	resp, err := api.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: from.Size, ToSize: to.Size})
	if err != nil {
		return err
	}
	p := resp.GetProof()
	if p == nil || p.FromSize != from.Size || p.ToSize != to.Size {
		return fmt.Errorf("consistency proof for other sizes")
	}
	hs := make([]merkle.Hash, len(p.Hashes))
	for i, b := range p.Hashes {
		if hs[i], err = merkle.HashFromBytes(b); err != nil {
			return err
		}
	}
	return merkle.VerifyConsistency(from.Size, to.Size, hs, from.Root, to.Root)
}

// run checks all acknowledged appends (sorted by index) and the
// consistency of the final checkpoint with first.
func (k *checker) run(ctx context.Context, first *ledger.Checkpoint, a *acks, ids []idAck) (Check, *ledger.Checkpoint) {
	ch := Check{AckedAppends: int64(a.Len()), FirstSize: first.Size}
	var need uint64
	if n := len(a.idx); n > 0 {
		need = a.idx[n-1] + 1
	}
	final, err := k.waitCheckpoint(ctx, k.apis[0], max(need, first.Size))
	if err != nil {
		ch.failf("final checkpoint: %v", err)
		ch.Lost = int64(a.Len())
		return ch, nil
	}
	ch.FinalSize = final.Size
	ch.Consistent = true
	if err := consistent(ctx, k.apis[0], first, final); err != nil {
		ch.Consistent = false
		ch.failf("final checkpoint (size %d) is not consistent with the first (size %d): %v", final.Size, first.Size, err)
	}
	// Every other node must extend the same tree.
	for i, api := range k.apis[1:] {
		cp, err := k.waitCheckpoint(ctx, api, final.Size)
		if err == nil {
			err = consistent(ctx, api, final, cp)
		}
		if err != nil {
			ch.Consistent = false
			ch.failf("node %d (%s): not consistent with the final checkpoint: %v", i+2, k.s.cfg.Addrs[min(i+1, len(k.s.cfg.Addrs)-1)], err)
		}
	}

	if final.Size <= k.s.cfg.VerifyAllUpTo {
		k.sweep(ctx, final, a, &ch)
	} else {
		k.sample(ctx, final, a, &ch)
	}
	for _, id := range ids {
		resp, err := k.apis[0].GetEntry(ctx, &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Id{Id: id.id}})
		ch.IDsChecked++
		if err != nil || resp.GetEntry().GetIndex() != id.index {
			ch.Lost++
			ch.failf("entry %s (index %d) not readable by id: %v", id.id, id.index, err)
		}
	}
	return ch, final
}

// sweep reads every entry of the final tree, recomputes its root and
// compares each acknowledged append with what is stored at its index.
func (k *checker) sweep(ctx context.Context, final *ledger.Checkpoint, a *acks, ch *Check) {
	ch.Method = "full"
	const chunk = 1000
	type result struct {
		entries []*pb.Entry
		err     error
	}
	n := (final.Size + chunk - 1) / chunk
	// Up to 4 chunks in flight, processed in order.
	futures := make(chan chan result, 4)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(futures)
		for i := uint64(0); i < n; i++ {
			f := make(chan result, 1)
			select {
			case futures <- f:
			case <-fctx.Done():
				return
			}
			start := i * chunk
			cnt := min(chunk, final.Size-start)
			go func() {
				// Only the leaves are checked: the server need not decode them.
				resp, err := k.apis[0].GetEntries(fctx, &pb.GetEntriesRequest{StartIndex: start, Count: uint32(cnt), LeavesOnly: true})
				f <- result{resp.GetEntries(), err}
			}()
		}
	}()
	defer wg.Wait()

	rng := merkle.NewRange()
	j := 0 // next ack to compare
	var leafBytes uint64
	for f := range futures {
		res := <-f
		if res.err != nil {
			ch.failf("reading entries from %d: %v", rng.Size(), res.err)
			cancel()
			for f := range futures {
				<-f
			}
			break
		}
		if len(res.entries) == 0 {
			ch.failf("no entries from %d (tree size %d)", rng.Size(), final.Size)
			cancel()
			for f := range futures {
				<-f
			}
			break
		}
		for _, e := range res.entries {
			i := rng.Size()
			if e.Index != i || i >= final.Size {
				ch.failf("entries out of order: got %d, want %d", e.Index, i)
				break
			}
			h := merkle.LeafHash(e.Leaf)
			leafBytes += uint64(len(e.Leaf))
			rng.Append(h, nil)
			for j < len(a.idx) && a.idx[j] == i {
				ch.Checked++
				if a.h[j] != hashPrefix(h[:]) {
					ch.Lost++
					if ch.Lost <= 5 {
						ch.failf("entry %d holds other bytes than the append acknowledged there", i)
					}
				}
				j++
			}
		}
		if k.progress != nil {
			k.progress(rng.Size(), final.Size)
		}
	}
	if rem := len(a.idx) - j; rem > 0 {
		ch.Lost += int64(rem)
		ch.failf("%d acknowledged appends at or past index %d were not found", rem, rng.Size())
	}
	if rng.Size() == final.Size {
		ch.RootRecomputed = rng.Root() == final.Root
		if !ch.RootRecomputed {
			ch.failf("the root of the %d entries read differs from the signed root", final.Size)
		}
	}
	if rng.Size() > 0 {
		ch.LeafBytesMean = float64(leafBytes) / float64(rng.Size())
	}
}

// sample proves a random sample of the acknowledged appends against the
// final checkpoint.
func (k *checker) sample(ctx context.Context, final *ledger.Checkpoint, a *acks, ch *Check) {
	ch.Method = "sample"
	r := rand.New(rand.NewPCG(k.s.cfg.Seed, 0x5eed))
	picks := make([]int, min(k.s.cfg.VerifySample, a.Len()))
	for i := range picks {
		picks[i] = r.IntN(a.Len())
	}
	sort.Ints(picks)
	picks = slices.Compact(picks)
	m := len(picks)
	for n, p := range picks {
		idx := a.idx[p]
		ch.Checked++
		resp, err := k.apis[0].GetInclusionProof(ctx, &pb.GetInclusionProofRequest{
			Key: &pb.GetInclusionProofRequest_Index{Index: idx}, TreeSize: final.Size,
		})
		if err == nil {
			pr := resp.GetProof()
			switch {
			case pr == nil:
				err = fmt.Errorf("no proof")
			case hashPrefix(pr.LeafHash) != a.h[p]:
				err = fmt.Errorf("other bytes than the append acknowledged there")
			default:
				err = verifyInclusion(pr.LeafHash, idx, final.Size, pr.Hashes, final.Root)
			}
		}
		if err != nil {
			ch.Lost++
			if ch.Lost <= 5 {
				ch.failf("entry %d: %v", idx, err)
			}
		}
		if k.progress != nil && n%100 == 0 {
			k.progress(uint64(n), uint64(m))
		}
	}
}
