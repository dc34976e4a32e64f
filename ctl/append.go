package ctl

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/auditledger/ledgerd/api"
	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

const (
	// defaultBatchEvents is how many stdin events go in one AppendBatch.
	defaultBatchEvents = 1000
	// maxBatchEvents is the server's limit on events per batch.
	maxBatchEvents = 10000
	// maxBatchBytes keeps a batch well under the server's 16 MiB.
	maxBatchBytes = 8 << 20
	// maxLineBytes bounds one NDJSON line (an event is at most 64 KiB
	// encoded; JSON escaping can make it longer).
	maxLineBytes = 1 << 20
)

type appendOpts struct {
	event          string
	wait           bool
	batchSize      int
	checkpointFile string
}

func newAppendCmd(g *globals) *cobra.Command {
	var o appendOpts
	cmd := &cobra.Command{
		Use:   "append [--event JSON] [--wait]",
		Short: "Append audit events (NDJSON on stdin, or one --event)",
		Long: `Append audit events. Events are JSON in the shape of the audit service's
POST /api/audit/events (camelCase: id, timestamp, actor{id,type,ip,session,
userAgent}, action{type,resource,resourceId,result,duration,metadata},
context{requestId,environment,application,version}, version); unknown fields
are rejected. Give one with --event, or pipe newline-delimited JSON on stdin
(blank lines are skipped; events are sent in AppendBatch calls of
--batch-size, in order, so the log keeps the input order).

Prints one JSON line per event, in input order:
  {"index":N,"id":"…","leafHash":"…","signature":"…"}
plus "duplicate":true when an event with that id was already in the log
(nothing was appended; the original entry is shown).

With --wait, each batch waits for a signed checkpoint that covers it and every
line also carries "inclusion" (the prove inclusion shape) and "checkpoint" (the
signed note it proves against): a receipt that "ledgerctl verify inclusion
--key K" checks offline as is. --checkpoint-out also writes the newest of those
checkpoints to a file.

On a bad line, the lines before it are appended and printed, the bad line and
the rest are not, and the exit status is 2; re-running the whole input is safe
when the events carry ids (appends are idempotent by id).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.batchSize < 1 || o.batchSize > maxBatchEvents {
				return fmt.Errorf("--batch-size must be between 1 and %d", maxBatchEvents)
			}
			if o.checkpointFile != "" && !o.wait {
				return errors.New("--checkpoint-out needs --wait")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			a := &appender{g: g, c: c, o: o}
			if cmd.Flags().Changed("event") {
				err = a.one(cmd.Context())
			} else {
				err = a.stream(cmd.Context())
			}
			if err == nil && a.newest != nil && o.checkpointFile != "" {
				err = os.WriteFile(o.checkpointFile, a.newest.Note, 0o644)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.event, "event", "", "one event as JSON (instead of NDJSON on stdin)")
	f.BoolVar(&o.wait, "wait", false, "wait for a checkpoint covering the events; add inclusion proof and checkpoint to each line")
	f.IntVar(&o.batchSize, "batch-size", defaultBatchEvents, "events per AppendBatch call when reading stdin")
	f.StringVar(&o.checkpointFile, "checkpoint-out", "", "with --wait: write the newest checkpoint (signed note) to this file")
	return cmd
}

type appender struct {
	g      *globals
	c      pb.LedgerClient
	o      appendOpts
	newest *pb.Checkpoint
}

func (a *appender) one(ctx context.Context) error {
	ev, err := api.ParseEventJSON([]byte(a.o.event))
	if err != nil {
		return fmt.Errorf("--event: %s", trimLedgerPrefix(err))
	}
	resp, err := a.c.Append(ctx, &pb.AppendRequest{Event: ev, WaitCheckpoint: a.o.wait})
	if err != nil {
		return err
	}
	return a.print([]*pb.AppendResult{resp.GetResult()}, resp.GetCheckpoint())
}

// stream reads NDJSON events from stdin and appends them batch by batch.
func (a *appender) stream(ctx context.Context) error {
	if isTerminal(a.g.stdin) {
		return errors.New("no --event given and stdin is a terminal: pipe newline-delimited JSON events in")
	}
	sc := bufio.NewScanner(a.g.stdin)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	var (
		batch []*pb.Event
		size  int
		line  int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := a.send(ctx, batch)
		batch, size = batch[:0], 0
		return err
	}
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		ev, err := api.ParseEventJSON(b)
		if err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return fmt.Errorf("stdin line %d: %s", line, trimLedgerPrefix(err))
		}
		n := proto.Size(ev)
		if len(batch) > 0 && (len(batch) >= a.o.batchSize || size+n > maxBatchBytes) {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, ev)
		size += n
	}
	if err := sc.Err(); err != nil {
		if ferr := flush(); ferr != nil {
			return ferr
		}
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("stdin line %d: longer than %d bytes", line+1, maxLineBytes)
		}
		return fmt.Errorf("read stdin: %w", err)
	}
	return flush()
}

func (a *appender) send(ctx context.Context, events []*pb.Event) error {
	resp, err := a.c.AppendBatch(ctx, &pb.AppendBatchRequest{Events: events, WaitCheckpoint: a.o.wait})
	if err != nil {
		return err
	}
	if len(resp.Results) != len(events) {
		return fmt.Errorf("server returned %d results for %d events", len(resp.Results), len(events))
	}
	if want := api.BatchChecksum(resp.Results); !bytes.Equal(want, resp.Checksum) {
		return errors.New("server's batch checksum does not match its results")
	}
	return a.print(resp.Results, resp.GetCheckpoint())
}

func (a *appender) print(results []*pb.AppendResult, cp *pb.Checkpoint) error {
	if a.o.wait {
		if cp == nil {
			return errors.New("server returned no checkpoint for --wait")
		}
		if a.newest == nil || cp.Size >= a.newest.Size {
			a.newest = cp
		}
	}
	for _, r := range results {
		l := appendLine{Index: r.Index, ID: r.Id, LeafHash: r.LeafHash, Signature: r.Signature, Duplicate: r.Duplicate}
		if a.o.wait {
			p := r.GetInclusion()
			if p == nil {
				return fmt.Errorf("server returned no inclusion proof for index %d", r.Index)
			}
			l.Inclusion = &inclusionJSON{Index: p.Index, TreeSize: p.TreeSize, LeafHash: p.LeafHash, Hashes: nonNil(p.Hashes)}
			l.Checkpoint = string(cp.Note)
		}
		if err := a.g.printJSON(l); err != nil {
			return err
		}
	}
	return nil
}

// trimLedgerPrefix drops the "ledger: invalid argument: " of an
// ErrInvalid: on the command line the context says it already.
func trimLedgerPrefix(err error) string {
	msg := err.Error()
	const p = "ledger: invalid argument: "
	if len(msg) > len(p) && msg[:len(p)] == p {
		return msg[len(p):]
	}
	return msg
}
