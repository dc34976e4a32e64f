package ctl

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/auditledger/ledgerd/api"
	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/fieldcrypt"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

// maxPage is the server's limit on entries per GetEntries call.
const maxPage = 1000

type verifyLogOpts struct {
	key, origin, since string
	hmacKeys           []string
	pageSize           int
	progress           bool
}

// logReport is verify-log's one line of JSON on stdout.
type logReport struct {
	OK             bool    `json:"ok"`
	Origin         string  `json:"origin,omitempty"`
	TreeSize       uint64  `json:"treeSize"`
	RootHash       []byte  `json:"rootHash,omitempty"`
	KeyPinned      bool    `json:"keyPinned"`
	HMACChecked    bool    `json:"hmacChecked"`
	EntriesChecked uint64  `json:"entriesChecked"`
	FirstBadIndex  *uint64 `json:"firstBadIndex,omitempty"`
	Reason         string  `json:"reason,omitempty"`
}

func newVerifyLogCmd(g *globals) *cobra.Command {
	var o verifyLogOpts
	cmd := &cobra.Command{
		Use:   "verify-log [--key VKEY|FILE] [--since FILE] [--hmac-key FILE]...",
		Short: "Read the whole log and check every entry against the signed checkpoint",
		Long: `Read every entry up to the latest checkpoint and check, for each one: that it
is the index asked for, that the server's leafHash is SHA-256(0x00 || leaf),
that the leaf decodes strictly (canonical encoding) into a valid event, that
the event, receive time, key id and signature the server decoded are those in
the leaf, and (with --hmac-key) its HMAC signature. It recomputes the Merkle
tree from the leaves and checks it against the signed checkpoint: after every
page, the root of the prefix read so far must be consistent with the signed
root (a consistency proof from the server, verified here), and at the end the
root must equal it. So a changed leaf or tree node is found, and named, at the
first index where anything differs.

The checkpoint is verified with --key; without it, with the key the server
sends, which proves nothing against a lying server (the report says
"keyPinned":false and a warning goes to stderr). --since FILE also checks that
the log extends an earlier checkpoint you kept.

Prints one JSON line: {"ok":true,"origin":…,"treeSize":N,"rootHash":…,
"keyPinned":…,"hmacChecked":…,"entriesChecked":N}; on failure "ok":false,
"firstBadIndex" (when an entry is to blame) and "reason", the reason on stderr
too, exit status 1. Progress goes to stderr when it is a terminal, or with
--progress.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.pageSize < 1 || o.pageSize > maxPage {
				return fmt.Errorf("--page-size must be between 1 and %d", maxPage)
			}
			show := isTerminal(g.stderr)
			if cmd.Flags().Changed("progress") {
				show = o.progress
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			lv := &logVerifier{g: g, c: c, o: o, prog: &progress{w: g.stderr, on: show, tty: isTerminal(g.stderr)}}
			defer lv.prog.finish()
			return lv.run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.key, "key", "", "pinned checkpoint verifier key, or a file holding it (default: the server's, not pinned)")
	f.StringVar(&o.origin, "origin", "", "require this checkpoint origin")
	f.StringVar(&o.since, "since", "", "an earlier signed checkpoint file the log must extend")
	f.StringArrayVar(&o.hmacKeys, "hmac-key", nil, "HMAC key file (as ledgerd's --hmac-key-file) to check entry signatures; repeat for old keys")
	f.IntVar(&o.pageSize, "page-size", maxPage, "entries per GetEntries call")
	f.BoolVar(&o.progress, "progress", false, "show progress on stderr (default: when stderr is a terminal)")
	return cmd
}

type logVerifier struct {
	g    *globals
	c    pb.LedgerClient
	o    verifyLogOpts
	prog *progress

	rep  logReport
	cp   *ledger.Checkpoint
	hmac *ledger.Keyring
}

// fail prints the report of a failed verification and returns its error.
func (v *logVerifier) fail(index *uint64, format string, args ...any) error {
	reason := fmt.Sprintf(format, args...)
	v.rep.OK, v.rep.FirstBadIndex, v.rep.Reason = false, index, reason
	v.prog.finish()
	if err := v.g.printJSON(v.rep); err != nil {
		return err
	}
	if index != nil {
		return fmt.Errorf("%w: entry %d: %s", errVerify, *index, reason)
	}
	return fmt.Errorf("%w: %s", errVerify, reason)
}

func (v *logVerifier) failAt(i uint64, format string, args ...any) error {
	return v.fail(&i, format, args...)
}

func (v *logVerifier) run(ctx context.Context) error {
	// Local inputs first: a typo fails before anything is asked.
	var verifier note.Verifier
	var err error
	if v.o.key != "" {
		if verifier, err = loadVerifier(v.o.key); err != nil {
			return err
		}
		v.rep.KeyPinned = true
	}
	if err := v.loadHMAC(); err != nil {
		return err
	}
	var sinceNote []byte
	if v.o.since != "" {
		if sinceNote, err = os.ReadFile(v.o.since); err != nil {
			return fmt.Errorf("--since: %w", err)
		}
	}

	resp, err := v.c.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	if err != nil {
		return err
	}
	if verifier == nil {
		fmt.Fprintln(v.g.stderr, "ledgerctl: warning: verifier key not pinned: checking the checkpoint with the key the server sent (pass --key)")
		if verifier, err = note.NewVerifier(resp.VerifierKey); err != nil {
			return v.fail(nil, "the server's verifier key %q does not parse: %v", resp.VerifierKey, err)
		}
	}
	var since *ledger.Checkpoint
	if sinceNote != nil {
		if since, err = openCheckpoint("--since checkpoint", sinceNote, verifier, v.o.origin); err != nil {
			return v.fail(nil, "%s", strings.TrimPrefix(err.Error(), errVerify.Error()+": "))
		}
	}

	cp, err := openCheckpoint("checkpoint", resp.GetCheckpoint().GetNote(), verifier, v.o.origin)
	if err != nil {
		return v.fail(nil, "%s", strings.TrimPrefix(err.Error(), errVerify.Error()+": "))
	}
	v.cp = cp
	v.rep.Origin, v.rep.TreeSize, v.rep.RootHash = cp.Origin, cp.Size, cp.Root[:]
	if pc := resp.GetCheckpoint(); pc.Size != cp.Size || pc.Origin != cp.Origin || !bytes.Equal(pc.RootHash, cp.Root[:]) {
		return v.fail(nil, "the server's checkpoint fields (size %d, origin %q, root %s) differ from its signed note", pc.Size, pc.Origin, b64(pc.RootHash))
	}
	if since != nil {
		if since.Origin != cp.Origin {
			return v.fail(nil, "the --since checkpoint is of origin %q, the server's of %q", since.Origin, cp.Origin)
		}
		if since.Size > cp.Size {
			return v.fail(nil, "the --since checkpoint has size %d, more than the server's %d: the log shrank or forked", since.Size, cp.Size)
		}
		if since.Size == 0 && since.Root != merkle.EmptyRoot() {
			return v.fail(nil, "the --since checkpoint has size 0 and a root that is not the empty root")
		}
	}

	n := cp.Size
	v.prog.total = n
	r := merkle.NewRange()
	pf := v.prefetch(ctx, n)
	defer func() { pf.stop() }()
	for start := uint64(0); start < n; {
		count := min(uint64(v.o.pageSize), n-start)
		var entries []*pb.Entry
		if f, ok := pf.next(); ok && f.err == nil && f.start == start {
			if entries, err = v.checkPage(start, f.count, f.resp); err != nil {
				return err
			}
		} else {
			// The read-ahead hit an error: go on one page at a time,
			// where fetch can narrow it down to an index.
			pf.stop()
			if entries, err = v.fetch(ctx, start, count); err != nil {
				return err
			}
		}
		pageStart := r.Clone()
		hashes := make([]merkle.Hash, len(entries))
		var bad *uint64
		var badReason string
		for k, e := range entries {
			i := start + uint64(k)
			hashes[k] = merkle.LeafHash(e.Leaf)
			if bad == nil {
				if reason := v.checkEntry(i, e, hashes[k]); reason != "" {
					bad, badReason = &i, reason
				}
			}
		}
		r.AppendMany(hashes, nil)
		end := r.Size()
		ok, err := v.prefixOK(ctx, end, r.Root())
		if err != nil {
			return err
		}
		if !ok {
			i, err := v.locate(ctx, start, pageStart, hashes)
			if err != nil {
				return err
			}
			if bad == nil || *bad > i {
				return v.failAt(i, "the tree up to this leaf is not the signed tree: the leaf (or the server's tree) differs from what was signed")
			}
		}
		if bad != nil {
			return v.fail(bad, "%s", badReason)
		}
		if since != nil && start < since.Size && since.Size <= end {
			pr := pageStart.Clone()
			pr.AppendMany(hashes[:since.Size-start], nil)
			if pr.Root() != since.Root {
				return v.fail(nil, "the first %d entries do not have the root of the --since checkpoint: the log was rewritten or forked since", since.Size)
			}
		}
		v.rep.EntriesChecked = end
		v.prog.update(end)
		start = end
	}
	if n == 0 && cp.Root != merkle.EmptyRoot() {
		return v.fail(nil, "the checkpoint of size 0 does not have the empty root")
	}
	v.rep.OK = true
	v.prog.finish()
	return v.g.printJSON(v.rep)
}

func (v *logVerifier) loadHMAC() error {
	if len(v.o.hmacKeys) == 0 {
		return nil
	}
	keys := make([][]byte, len(v.o.hmacKeys))
	for i, p := range v.o.hmacKeys {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("--hmac-key: %w", err)
		}
		keys[i] = bytes.TrimRight(b, "\r\n")
	}
	kr, err := ledger.NewKeyring(keys[0], keys[1:]...)
	if err != nil {
		return fmt.Errorf("--hmac-key: %w", err)
	}
	v.hmac, v.rep.HMACChecked = kr, true
	return nil
}

// fetch reads up to count entries from start. An entry the server cannot
// serve makes it halve the page until that entry is the first one, and
// then fail naming it.
func (v *logVerifier) fetch(ctx context.Context, start, count uint64) ([]*pb.Entry, error) {
	for {
		resp, err := v.c.GetEntries(ctx, &pb.GetEntriesRequest{StartIndex: start, Count: uint32(count)})
		if err == nil {
			return v.checkPage(start, count, resp)
		}
		switch status.Code(err) {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unauthenticated, codes.PermissionDenied, codes.Unimplemented:
			return nil, err
		}
		if count == 1 {
			return nil, v.failAt(start, "the server cannot serve the entry: %s", errorLine(err))
		}
		count /= 2
	}
}

// checkPage checks the shape of a GetEntries response for count entries
// from start.
func (v *logVerifier) checkPage(start, count uint64, resp *pb.GetEntriesResponse) ([]*pb.Entry, error) {
	if resp.TreeSize < v.cp.Size {
		return nil, v.failAt(resp.TreeSize, "the server holds %d entries, fewer than its checkpoint's %d", resp.TreeSize, v.cp.Size)
	}
	if len(resp.Entries) == 0 {
		return nil, v.failAt(start, "the server returned no entry below its checkpoint's size %d", v.cp.Size)
	}
	if uint64(len(resp.Entries)) > count {
		return nil, v.failAt(start+count, "the server returned %d entries for %d asked", len(resp.Entries), count)
	}
	return resp.Entries, nil
}

// prefetcher reads pages ahead of the verifier, so that fetching the next
// page overlaps checking this one. Its goroutine is stopped by stop,
// which run always calls.
type prefetcher struct {
	pages  chan fetched
	cancel context.CancelFunc
	done   chan struct{}
}

type fetched struct {
	start, count uint64
	resp         *pb.GetEntriesResponse
	err          error
}

// prefetch starts reading the pages of [0, n), stopping after the first
// error or empty page.
func (v *logVerifier) prefetch(ctx context.Context, n uint64) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetcher{pages: make(chan fetched, 2), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer close(p.pages)
		for start := uint64(0); start < n; {
			count := min(uint64(v.o.pageSize), n-start)
			resp, err := v.c.GetEntries(ctx, &pb.GetEntriesRequest{StartIndex: start, Count: uint32(count)})
			select {
			case p.pages <- fetched{start, count, resp, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(resp.Entries) == 0 {
				return
			}
			start += uint64(len(resp.Entries))
		}
	}()
	return p
}

// next returns the next page read ahead; false once the prefetcher
// stopped.
func (p *prefetcher) next() (fetched, bool) {
	f, ok := <-p.pages
	return f, ok
}

// stop stops the read-ahead and waits for its goroutine. Safe to repeat.
func (p *prefetcher) stop() {
	p.cancel()
	<-p.done
}

// checkEntry returns why entry e, expected at index i with leaf hash lh,
// is wrong, or "".
func (v *logVerifier) checkEntry(i uint64, e *pb.Entry, lh merkle.Hash) string {
	if e.Index != i {
		return fmt.Sprintf("the server labels it index %d", e.Index)
	}
	if !bytes.Equal(e.LeafHash, lh[:]) {
		return fmt.Sprintf("the server's leafHash %s is not the hash of the leaf, %s", b64(e.LeafHash), b64(lh[:]))
	}
	d, err := ledger.DecodeLeaf(e.Leaf)
	if err != nil {
		return "the leaf does not decode: " + trimLedgerPrefix(err)
	}
	if d.ID == "" {
		return "the leaf has no event id"
	}
	if err := d.Event.Validate(); err != nil {
		return "the leaf holds an invalid event: " + strings.TrimPrefix(err.Error(), "ledger: ")
	}
	if v.hmac != nil {
		if err := v.hmac.Verify(d, e.Leaf); err != nil {
			return "HMAC: " + strings.TrimPrefix(trimLedgerPrefix(err), "ledger: ")
		}
	}
	if e.Event == nil {
		return "the server sent no decoded event"
	}
	if f := viewDiff(&d.Event, e.Event); f != "" {
		return "the event the server sent differs from the one in the leaf at " + f
	}
	switch {
	case e.ReceivedAt != d.ReceivedTime().Format(time.RFC3339Nano):
		return fmt.Sprintf("the server's receivedAt %q differs from the leaf's %q", e.ReceivedAt, d.ReceivedTime().Format(time.RFC3339Nano))
	case e.KeyId != d.KeyID:
		return fmt.Sprintf("the server's keyId %q differs from the leaf's %q", e.KeyId, d.KeyID)
	case !bytes.Equal(e.Signature, d.Signature):
		return "the server's signature differs from the leaf's"
	}
	return ""
}

// prefixOK reports whether root, recomputed over the first m leaves, is
// the root of the signed tree's first m leaves: equal to the signed root
// when m is its size, else linked to it by a verified consistency proof.
func (v *logVerifier) prefixOK(ctx context.Context, m uint64, root merkle.Hash) (bool, error) {
	if m == v.cp.Size {
		return root == v.cp.Root, nil
	}
	resp, err := v.c.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: m, ToSize: v.cp.Size})
	if err != nil {
		return false, err
	}
	hs, err := hashList("consistency proof", resp.GetProof().GetHashes())
	if err != nil {
		return false, nil
	}
	return merkle.VerifyConsistency(m, v.cp.Size, hs, root, v.cp.Root) == nil, nil
}

// locate finds the first leaf of a page (starting at start, the tree
// before it being pageStart, which is known good) whose prefix is not
// the signed tree's: binary search with consistency proofs.
func (v *logVerifier) locate(ctx context.Context, start uint64, pageStart *merkle.Range, hashes []merkle.Hash) (uint64, error) {
	lo, hi := start, start+uint64(len(hashes)) // prefix lo is good, hi is bad
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		r := pageStart.Clone()
		r.AppendMany(hashes[:mid-start], nil)
		ok, err := v.prefixOK(ctx, mid, r.Root())
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi - 1, nil
}

// progress reports verify-log's progress on stderr: one line rewritten
// in place on a terminal, else a line every few seconds.
type progress struct {
	w       io.Writer
	on, tty bool
	total   uint64
	last    time.Time
	dirty   bool // a terminal line is open
	done    bool
}

func (p *progress) update(n uint64) {
	if !p.on || p.done {
		return
	}
	every := 2 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	now := time.Now()
	if n < p.total && now.Sub(p.last) < every {
		return
	}
	p.last = now
	pct := uint64(100)
	if p.total > 0 {
		pct = n * 100 / p.total
	}
	if p.tty {
		fmt.Fprintf(p.w, "\rverify-log: %d/%d entries (%d%%)", n, p.total, pct)
		p.dirty = true
		return
	}
	fmt.Fprintf(p.w, "verify-log: %d/%d entries (%d%%)\n", n, p.total, pct)
}

// finish ends an open terminal line so what follows starts on its own.
func (p *progress) finish() {
	if p.dirty {
		fmt.Fprintln(p.w)
		p.dirty = false
	}
	p.done = true
}

// viewDiff returns the first field where the event the server sent
// differs from the event in the leaf, or "". Values encrypted in the leaf
// (fieldcrypt's sealed form) are shown decrypted or masked, depending on
// the caller's role, so only their presence is compared.
func viewDiff(leaf *ledger.Event, sent *pb.Event) string {
	s := api.EventFromProto(sent)
	fields := []struct {
		name string
		l, s string
	}{
		{"id", leaf.ID, s.ID},
		{"timestamp", leaf.Timestamp, s.Timestamp},
		{"actor.id", leaf.Actor.ID, s.Actor.ID},
		{"actor.type", leaf.Actor.Type, s.Actor.Type},
		{"actor.ip", leaf.Actor.IP, s.Actor.IP},
		{"actor.session", leaf.Actor.Session, s.Actor.Session},
		{"actor.userAgent", leaf.Actor.UserAgent, s.Actor.UserAgent},
		{"action.type", leaf.Action.Type, s.Action.Type},
		{"action.resource", leaf.Action.Resource, s.Action.Resource},
		{"action.resourceId", leaf.Action.ResourceID, s.Action.ResourceID},
		{"action.result", leaf.Action.Result, s.Action.Result},
		{"context.requestId", leaf.Context.RequestID, s.Context.RequestID},
		{"context.environment", leaf.Context.Environment, s.Context.Environment},
		{"context.application", leaf.Context.Application, s.Context.Application},
		{"context.version", leaf.Context.Version, s.Context.Version},
		{"version", leaf.Version, s.Version},
	}
	for _, f := range fields {
		if !sameValue(f.l, f.s) {
			return f.name
		}
	}
	if leaf.Action.Duration != s.Action.Duration {
		return "action.duration"
	}
	if len(leaf.Action.Metadata) != len(s.Action.Metadata) {
		return "action.metadata"
	}
	for k, v := range leaf.Action.Metadata {
		sv, ok := s.Action.Metadata[k]
		if !ok || !sameValue(v, sv) {
			return "action.metadata." + k
		}
	}
	return ""
}

func sameValue(leaf, sent string) bool {
	return leaf == sent || (fieldcrypt.IsSealed(leaf) && sent != "")
}
