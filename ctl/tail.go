package ctl

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

// tailLine is one line of tail's output: get's entry shape, plus the
// inclusion proof and the checkpoint it is against with --proof.
type tailLine struct {
	entryJSON
	Inclusion  *inclusionJSON `json:"inclusion,omitempty"`
	Checkpoint string         `json:"checkpoint,omitempty"`
}

func newTailCmd(g *globals) *cobra.Command {
	var (
		from          uint64
		follow, proof bool
		key, origin   string
	)
	cmd := &cobra.Command{
		Use:   "tail [--from N] [--follow] [--proof [--key VKEY|FILE]]",
		Short: "Print the change feed as NDJSON",
		Long: `Print committed entries in index order from --from, one JSON line each, in
the shape of "get". Without --follow it stops at the end of the log; with it,
it waits for new entries until interrupted.

With --proof every line also carries "inclusion" (the entry's inclusion proof)
and "checkpoint" (the signed checkpoint it is against); the server then sends
only entries a checkpoint covers. With --key (implies --proof), tail verifies
each checkpoint with the pinned verifier key and each proof against it, and
fails (exit 1) on the first that does not verify.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var v note.Verifier
			if key != "" {
				proof = true
				var err error
				if v, err = loadVerifier(key); err != nil {
					return err
				}
			}
			cc, err := g.conn()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			stream, err := pb.NewFeedClient(cc).Subscribe(ctx, &pb.SubscribeRequest{FromIndex: from, Follow: follow, WithProof: proof})
			if err != nil {
				return err
			}
			var cp *ledger.Checkpoint // the last checkpoint, verified when v != nil
			var cpNote string
			for {
				msg, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					if ctx.Err() != nil {
						return nil // interrupted: a normal end of --follow
					}
					return err
				}
				e, err := entryOut(msg.GetEntry())
				if err != nil {
					return err
				}
				line := tailLine{entryJSON: *e}
				if proof {
					if c := msg.GetCheckpoint(); c != nil {
						cpNote = string(c.Note)
						if v != nil {
							if cp, err = openCheckpoint("checkpoint", c.Note, v, origin); err != nil {
								return err
							}
						} else if cp, err = ledger.ParseCheckpointText(noteText(c.Note)); err != nil {
							return fmt.Errorf("checkpoint: %w", err)
						}
					}
					in := msg.GetInclusion()
					if in == nil || cp == nil {
						return fmt.Errorf("entry %d: server sent no proof or checkpoint", e.Index)
					}
					if in.Index != e.Index || in.TreeSize != cp.Size {
						return fmt.Errorf("%w: entry %d: proof is for index %d in size %d, checkpoint size %d", errVerify, e.Index, in.Index, in.TreeSize, cp.Size)
					}
					if v != nil {
						hs, err := hashList("inclusion.hashes", in.Hashes)
						if err != nil {
							return err
						}
						if err := merkle.VerifyInclusion(merkle.LeafHash(e.Leaf), e.Index, cp.Size, hs, cp.Root); err != nil {
							return fmt.Errorf("%w: entry %d: %v", errVerify, e.Index, err)
						}
					}
					lh := merkle.LeafHash(e.Leaf)
					line.Inclusion = &inclusionJSON{Index: in.Index, TreeSize: in.TreeSize, LeafHash: lh[:], Hashes: nonNil(in.Hashes)}
					line.Checkpoint = cpNote
				}
				if err := g.printJSON(line); err != nil {
					return err
				}
			}
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&from, "from", 0, "index of the first entry")
	f.BoolVar(&follow, "follow", false, "keep waiting for new entries")
	f.BoolVar(&proof, "proof", false, "add each entry's inclusion proof and checkpoint")
	f.StringVar(&key, "key", "", "verify checkpoints and proofs with this verifier key, or a file holding it")
	f.StringVar(&origin, "origin", "", "with --key, require this checkpoint origin")
	return cmd
}

// noteText is the text of a signed note (everything before the blank
// line that starts the signatures), for reading a checkpoint unverified.
func noteText(msg []byte) string {
	s := string(msg)
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '\n' && s[i+1] == '\n' {
			return s[:i+1]
		}
	}
	return s
}
