package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

// checkError is a response the client found wrong: an invalid proof, a
// leaf that is not the one acknowledged, a bad batch checksum. These fail
// the benchmark.
type checkError struct {
	code string
	msg  string
}

func (e *checkError) Error() string { return e.code + ": " + e.msg }

func checkErrorf(code, format string, args ...any) error {
	return &checkError{code, fmt.Sprintf(format, args...)}
}

// errorCode names an error for the report: the gRPC code, or the check
// that failed.
func errorCode(err error) string {
	var ce *checkError
	switch {
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded.String()
	case errors.Is(err, context.Canceled):
		return codes.Canceled.String()
	}
	return status.Code(err).String()
}

// acks records acknowledged appends compactly: the index and the first 8
// bytes of the leaf hash (16 bytes an event; the check compares prefixes,
// which catches any accidental loss or substitution).
type acks struct {
	idx []uint64
	h   []uint64
}

func hashPrefix(b []byte) uint64 {
	if len(b) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func (a *acks) add(index uint64, leafHash []byte) {
	a.idx = append(a.idx, index)
	a.h = append(a.h, hashPrefix(leafHash))
}

func (a *acks) Len() int           { return len(a.idx) }
func (a *acks) Less(i, j int) bool { return a.idx[i] < a.idx[j] }
func (a *acks) Swap(i, j int) {
	a.idx[i], a.idx[j] = a.idx[j], a.idx[i]
	a.h[i], a.h[j] = a.h[j], a.h[i]
}

func (a *acks) merge(o *acks) {
	a.idx = append(a.idx, o.idx...)
	a.h = append(a.h, o.h...)
}

// lookup finds the acknowledged hash prefix of index in sorted acks.
func (a *acks) lookup(index uint64) (uint64, bool) {
	i := sort.Search(len(a.idx), func(i int) bool { return a.idx[i] >= index })
	if i < len(a.idx) && a.idx[i] == index {
		return a.h[i], true
	}
	return 0, false
}

// idAck is an acknowledged append remembered with its id, to read it back
// by id.
type idAck struct {
	id    string
	index uint64
}

// shared is the state every client of a run reads.
type shared struct {
	cfg      *Config
	weights  [nKinds]int
	total    int
	pool     []*pb.Event // pre-generated events, read only
	verifier note.Verifier
	origin   string
	runID    string
	// pinned is the checkpoint reads prove against.
	pinned atomic.Pointer[ledger.Checkpoint]
	// known are the acknowledged appends of the preload, sorted: reads
	// of those indices are checked against them.
	known *acks

	// live counters for the progress line.
	ops, events, errs atomic.Int64
}

// client is one concurrent client; only its goroutine touches it.
type client struct {
	s     *shared
	id    int
	api   pb.LedgerClient
	qapi  pb.QueryClient
	rnd   *rand.Rand
	users *rand.Zipf
	next  int // position in the pool

	record bool // measured phase: keep latencies
	hist   [nKinds]*Histogram
	ops    [nKinds]int64
	events [nKinds]int64
	errsK  [nKinds]int64
	errs   map[string]int64
	firstE map[string]string // first error message by code

	acks       acks
	ids        []idAck
	duplicates int64

	lastNote []byte
	lastCP   *ledger.Checkpoint
	seq      uint64
}

func newClient(s *shared, id int, api pb.LedgerClient, qapi pb.QueryClient) *client {
	c := &client{
		s: s, id: id, api: api, qapi: qapi,
		rnd:    rand.New(rand.NewPCG(SeedFor(s.cfg.Seed, id), uint64(id))),
		errs:   map[string]int64{},
		firstE: map[string]string{},
	}
	c.users = NewUsers(c.rnd, s.cfg.Users)
	if len(s.pool) > 0 {
		c.next = (id * 7919) % len(s.pool)
	}
	return c
}

// pick chooses the kind of the next operation.
func (c *client) pick() kind {
	if c.s.total == 1 {
		for k, w := range c.s.weights {
			if w > 0 {
				return kind(k)
			}
		}
	}
	x := c.rnd.IntN(c.s.total)
	for k, w := range c.s.weights {
		if x < w {
			return kind(k)
		}
		x -= w
	}
	return kAppend
}

// do runs one operation of the workload.
func (c *client) do(ctx context.Context) (int, int, error) {
	k := c.pick()
	ctx, cancel := context.WithTimeout(ctx, c.s.cfg.OpTimeout)
	defer cancel()
	var n int
	var err error
	switch k {
	case kAppend:
		n, err = c.appendOne(ctx, false)
	case kAppendBatch:
		n, err = c.appendBatch(ctx, c.s.cfg.Batch, false)
	case kAppendWait:
		if c.s.cfg.Batch > 1 {
			n, err = c.appendBatch(ctx, c.s.cfg.Batch, true)
		} else {
			n, err = c.appendOne(ctx, true)
		}
	case kGet:
		n, err = c.get(ctx)
	case kProve:
		n, err = c.prove(ctx)
	case kQuery:
		n, err = c.query(ctx)
	default:
		err = fmt.Errorf("%w: %s", ErrUnsupported, kindNames[k])
	}
	return int(k), n, err
}

// account records one finished operation.
func (c *client) account(k int, latency time.Duration, events int, err error) {
	c.s.ops.Add(1)
	if err != nil {
		c.s.errs.Add(1)
	} else {
		c.s.events.Add(int64(events))
	}
	if !c.record {
		if _, ok := err.(*checkError); ok || status.Code(err) == codes.DataLoss {
			c.countErr(err) // correctness failures count in every phase
		}
		return
	}
	if c.hist[k] == nil {
		c.hist[k] = NewHistogram()
	}
	c.hist[k].RecordDuration(latency)
	c.ops[k]++
	if err != nil {
		c.errsK[k]++
		c.countErr(err)
		return
	}
	c.events[k] += int64(events)
}

func (c *client) countErr(err error) {
	code := errorCode(err)
	c.errs[code]++
	if _, ok := c.firstE[code]; !ok {
		c.firstE[code] = err.Error()
	}
}

// event returns the next event of the pool, with a user drawn afresh for
// user actions and a fresh id when the run sends client ids.
func (c *client) event() *pb.Event {
	e := c.s.pool[c.next]
	c.next++
	if c.next == len(c.s.pool) {
		c.next = 0
	}
	if e.Actor.Type != "user" && !c.s.cfg.ClientIDs {
		return e
	}
	// A shallow copy: the shared sub-messages are only read.
	out := &pb.Event{Timestamp: e.Timestamp, Actor: e.Actor, Action: e.Action, Context: e.Context, Version: e.Version}
	if e.Actor.Type == "user" {
		u := c.users.Uint64() + 1
		a := e.Actor
		out.Actor = &pb.Actor{Id: UserID(u), Type: a.Type, Ip: UserIP(u), Session: a.Session, UserAgent: a.UserAgent}
	}
	if c.s.cfg.ClientIDs {
		c.seq++
		out.Id = c.s.runID + "-" + strconv.Itoa(c.id) + "-" + strconv.FormatUint(c.seq, 10)
	}
	return out
}

// keep records an acknowledged append.
func (c *client) keep(r *pb.AppendResult) {
	if r.Duplicate {
		c.duplicates++
		return
	}
	c.acks.add(r.Index, r.LeafHash)
	// About one in 1000 is read back by id after the run.
	if len(c.ids) < 200 && c.rnd.IntN(1000) == 0 {
		c.ids = append(c.ids, idAck{r.Id, r.Index})
	}
}

func (c *client) appendOne(ctx context.Context, wait bool) (int, error) {
	resp, err := c.api.Append(ctx, &pb.AppendRequest{Event: c.event(), WaitCheckpoint: wait})
	if err != nil {
		return 0, err
	}
	r := resp.GetResult()
	if r == nil || len(r.LeafHash) != merkle.HashSize {
		return 0, checkErrorf("BadResponse", "append returned no result or a bad leaf hash")
	}
	c.keep(r)
	if wait {
		if err := c.checkWaited(resp.Checkpoint, []*pb.AppendResult{r}); err != nil {
			return 0, err
		}
	}
	return 1, nil
}

func (c *client) appendBatch(ctx context.Context, n int, wait bool) (int, error) {
	events := make([]*pb.Event, n)
	for i := range events {
		events[i] = c.event()
	}
	resp, err := c.api.AppendBatch(ctx, &pb.AppendBatchRequest{Events: events, WaitCheckpoint: wait})
	if err != nil {
		return 0, err
	}
	if len(resp.Results) != n {
		return 0, checkErrorf("BadResponse", "batch of %d returned %d results", n, len(resp.Results))
	}
	h := sha256.New()
	for _, r := range resp.Results {
		h.Write(r.LeafHash)
	}
	if !bytes.Equal(h.Sum(nil), resp.Checksum) {
		return 0, checkErrorf("BadChecksum", "batch checksum does not match its results")
	}
	for _, r := range resp.Results {
		if len(r.LeafHash) != merkle.HashSize {
			return 0, checkErrorf("BadResponse", "bad leaf hash in batch result")
		}
		c.keep(r)
	}
	if wait {
		if err := c.checkWaited(resp.Checkpoint, resp.Results); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// openCheckpoint verifies a checkpoint note, remembering the last one (a
// checkpoint is signed every few milliseconds, so consecutive answers
// mostly carry the same note).
func (c *client) openCheckpoint(p *pb.Checkpoint) (*ledger.Checkpoint, error) {
	if p == nil {
		return nil, checkErrorf("BadResponse", "no checkpoint")
	}
	if c.lastCP != nil && bytes.Equal(p.Note, c.lastNote) {
		return c.lastCP, nil
	}
	cp, err := ledger.OpenCheckpoint(p.Note, c.s.verifier, c.s.origin)
	if err != nil {
		return nil, checkErrorf("InvalidCheckpoint", "%v", err)
	}
	c.lastNote, c.lastCP = p.Note, cp
	return cp, nil
}

// checkWaited verifies the inclusion proofs an append-and-wait returned.
func (c *client) checkWaited(p *pb.Checkpoint, results []*pb.AppendResult) error {
	cp, err := c.openCheckpoint(p)
	if err != nil {
		return err
	}
	for _, r := range results {
		inc := r.Inclusion
		if inc == nil || inc.Index != r.Index || inc.TreeSize != cp.Size || !bytes.Equal(inc.LeafHash, r.LeafHash) {
			return checkErrorf("InvalidProof", "append %d: missing or mismatched inclusion proof", r.Index)
		}
		if err := verifyInclusion(r.LeafHash, r.Index, cp.Size, inc.Hashes, cp.Root); err != nil {
			return err
		}
	}
	return nil
}

func verifyInclusion(leafHash []byte, index, size uint64, hashes [][]byte, root merkle.Hash) error {
	lh, err := merkle.HashFromBytes(leafHash)
	if err != nil {
		return checkErrorf("InvalidProof", "entry %d: %v", index, err)
	}
	proof := make([]merkle.Hash, len(hashes))
	for i, b := range hashes {
		if proof[i], err = merkle.HashFromBytes(b); err != nil {
			return checkErrorf("InvalidProof", "entry %d: %v", index, err)
		}
	}
	if err := merkle.VerifyInclusion(lh, index, size, proof, root); err != nil {
		return checkErrorf("InvalidProof", "entry %d in tree %d: %v", index, size, err)
	}
	return nil
}

// readIndex picks a random entry below the pinned checkpoint.
func (c *client) readIndex() (uint64, *ledger.Checkpoint, error) {
	cp := c.s.pinned.Load()
	if cp == nil || cp.Size == 0 {
		return 0, nil, fmt.Errorf("%w: nothing to read (empty ledger)", ErrUnsupported)
	}
	return c.rnd.Uint64N(cp.Size), cp, nil
}

// checkKnown compares a read's leaf hash with the acknowledged one, when
// the index was appended by this run.
func (c *client) checkKnown(index uint64, leafHash []byte) error {
	if want, ok := c.s.known.lookup(index); ok && want != hashPrefix(leafHash) {
		return checkErrorf("WrongLeaf", "entry %d is not the event acknowledged at that index", index)
	}
	return nil
}

func (c *client) get(ctx context.Context) (int, error) {
	idx, _, err := c.readIndex()
	if err != nil {
		return 0, err
	}
	resp, err := c.api.GetEntry(ctx, &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Index{Index: idx}})
	if err != nil {
		return 0, err
	}
	e := resp.GetEntry()
	if e == nil || e.Index != idx {
		return 0, checkErrorf("BadResponse", "asked for entry %d, got another", idx)
	}
	h := merkle.LeafHash(e.Leaf)
	if !bytes.Equal(h[:], e.LeafHash) {
		return 0, checkErrorf("WrongLeaf", "entry %d: leaf hash does not match its leaf", idx)
	}
	return 1, c.checkKnown(idx, h[:])
}

func (c *client) prove(ctx context.Context) (int, error) {
	idx, cp, err := c.readIndex()
	if err != nil {
		return 0, err
	}
	resp, err := c.api.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{
		Key: &pb.GetInclusionProofRequest_Index{Index: idx}, TreeSize: cp.Size,
	})
	if err != nil {
		return 0, err
	}
	p := resp.GetProof()
	if p == nil || p.Index != idx || p.TreeSize != cp.Size {
		return 0, checkErrorf("InvalidProof", "entry %d: proof for another index or size", idx)
	}
	if err := verifyInclusion(p.LeafHash, idx, cp.Size, p.Hashes, cp.Root); err != nil {
		return 0, err
	}
	return 1, c.checkKnown(idx, p.LeafHash)
}

// query runs one of the searches an auditor or a security team makes: a
// user's recent activity, denials and failures, one application's events,
// a user's actions of the last minute. Entries come back with their leaf
// hashes checked and the filter's fields checked against the event.
func (c *client) query(ctx context.Context) (int, error) {
	r := c.rnd
	f := &pb.QueryFilter{}
	req := &pb.QueryRequest{Filter: f, Limit: 100, Descending: true, SkipTotal: r.IntN(2) == 0}
	switch r.IntN(5) {
	case 0:
		f.ActorId = UserID(c.users.Uint64() + 1)
	case 1:
		f.Result = []string{"denied", "failure"}[r.IntN(2)]
	case 2:
		k := resources[r.IntN(len(resources))]
		f.Resource = k.name
		f.ActionType = k.actions[r.IntN(len(k.actions))]
		req.Limit = 50
	case 3:
		k := resources[r.IntN(len(resources))]
		f.Application = k.apps[r.IntN(len(k.apps))]
		f.Environment = "production"
	default:
		f.ActorId = UserID(c.users.Uint64() + 1)
		f.ReceivedAfter = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	}
	resp, err := c.qapi.Query(ctx, req)
	if err != nil {
		return 0, err
	}
	if len(resp.Entries) > int(req.Limit) {
		return 0, checkErrorf("BadResponse", "query returned %d entries, limit %d", len(resp.Entries), req.Limit)
	}
	for _, e := range resp.Entries {
		h := merkle.LeafHash(e.Leaf)
		if !bytes.Equal(h[:], e.LeafHash) {
			return 0, checkErrorf("WrongLeaf", "query entry %d: leaf hash does not match its leaf", e.Index)
		}
		if err := c.checkKnown(e.Index, h[:]); err != nil {
			return 0, err
		}
		if !matches(f, e.Event) {
			return 0, checkErrorf("WrongResult", "query entry %d does not match the filter %v", e.Index, f)
		}
	}
	return len(resp.Entries), nil
}

// matches checks the exact-match fields of a filter against an event.
func matches(f *pb.QueryFilter, e *pb.Event) bool {
	if e == nil {
		return false
	}
	eq := func(want, got string) bool { return want == "" || want == got }
	return eq(f.ActorId, e.GetActor().GetId()) &&
		eq(f.Result, e.GetAction().GetResult()) &&
		eq(f.Resource, e.GetAction().GetResource()) &&
		eq(f.ActionType, e.GetAction().GetType()) &&
		eq(f.Application, e.GetContext().GetApplication()) &&
		eq(f.Environment, e.GetContext().GetEnvironment())
}
