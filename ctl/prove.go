package ctl

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

func newProveCmd(g *globals) *cobra.Command {
	cmd := group("prove", "Fetch Merkle proofs (inclusion, consistency)")
	cmd.AddCommand(newProveInclusionCmd(g))
	cmd.AddCommand(newProveConsistencyCmd(g))
	return cmd
}

func newProveInclusionCmd(g *globals) *cobra.Command {
	var (
		index, size uint64
		cpOut       string
	)
	cmd := &cobra.Command{
		Use:   "inclusion --index N [--size S] [--checkpoint-out FILE]",
		Short: "Print the inclusion proof of an entry",
		Long: `Print the RFC 6962 inclusion proof of entry N in the tree of size S as
  {"index":N,"treeSize":S,"leafHash":"…","hashes":["…"]}
Without --size the proof is against the latest checkpoint; --checkpoint-out
saves that very checkpoint, so "verify inclusion" can check the pair offline.
The proof is not checked here: use "ledgerctl verify inclusion".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("index") {
				return errors.New("--index is required")
			}
			if cmd.Flags().Changed("size") && size == 0 {
				return errors.New("--size must be positive")
			}
			if cpOut != "" && size != 0 {
				return errors.New("--checkpoint-out saves the latest checkpoint: omit --size")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			resp, err := c.GetInclusionProof(cmd.Context(), &pb.GetInclusionProofRequest{Key: &pb.GetInclusionProofRequest_Index{Index: index}, TreeSize: size})
			if err != nil {
				return err
			}
			p := resp.GetProof()
			if p == nil {
				return errors.New("server returned no proof")
			}
			if err := saveCheckpoint(cpOut, resp.GetCheckpoint(), p.TreeSize); err != nil {
				return err
			}
			return g.printJSON(inclusionJSON{Index: p.Index, TreeSize: p.TreeSize, LeafHash: p.LeafHash, Hashes: nonNil(p.Hashes)})
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&index, "index", 0, "entry index (0-based)")
	f.Uint64Var(&size, "size", 0, "tree size to prove against (default: the latest checkpoint)")
	f.StringVar(&cpOut, "checkpoint-out", "", "write the checkpoint the proof is against to this file (without --size)")
	return cmd
}

func newProveConsistencyCmd(g *globals) *cobra.Command {
	var (
		from, to uint64
		cpOut    string
	)
	cmd := &cobra.Command{
		Use:   "consistency --from M [--to N] [--checkpoint-out FILE]",
		Short: "Print the consistency proof between two tree sizes",
		Long: `Print the RFC 6962 consistency proof that the tree of size N extends the
tree of size M as
  {"fromSize":M,"toSize":N,"hashes":["…"]}
Without --to the proof reaches the latest checkpoint; --checkpoint-out saves it.
Check it with "ledgerctl verify consistency" against both signed checkpoints.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("from") {
				return errors.New("--from is required")
			}
			if cmd.Flags().Changed("to") && to == 0 {
				return errors.New("--to must be positive")
			}
			if cpOut != "" && to != 0 {
				return errors.New("--checkpoint-out saves the latest checkpoint: omit --to")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			resp, err := c.GetConsistencyProof(cmd.Context(), &pb.GetConsistencyProofRequest{FromSize: from, ToSize: to})
			if err != nil {
				return err
			}
			p := resp.GetProof()
			if p == nil {
				return errors.New("server returned no proof")
			}
			if err := saveCheckpoint(cpOut, resp.GetCheckpoint(), p.ToSize); err != nil {
				return err
			}
			return g.printJSON(consistencyJSON{FromSize: p.FromSize, ToSize: p.ToSize, Hashes: nonNil(p.Hashes)})
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&from, "from", 0, "old tree size")
	f.Uint64Var(&to, "to", 0, "new tree size (default: the latest checkpoint)")
	f.StringVar(&cpOut, "checkpoint-out", "", "write the checkpoint the proof reaches to this file (without --to)")
	return cmd
}

// saveCheckpoint writes the note of cp to path (when path is set); cp must
// be the checkpoint of size, the one the proof was made against.
func saveCheckpoint(path string, cp *pb.Checkpoint, size uint64) error {
	if path == "" {
		return nil
	}
	if cp == nil || len(cp.Note) == 0 {
		return errors.New("server returned no checkpoint with the proof")
	}
	if cp.Size != size {
		return fmt.Errorf("server returned a checkpoint of size %d with a proof for size %d", cp.Size, size)
	}
	return os.WriteFile(path, cp.Note, 0o644)
}
