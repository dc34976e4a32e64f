package ctl

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

func newVerifyCmd(g *globals) *cobra.Command {
	cmd := group("verify", "Check proofs offline against signed checkpoints")
	cmd.Long = `Check proofs offline, without asking the server anything: the checkpoint
signature(s) with the verifier key you pinned (--key), that the proof is for the
checkpoint's tree size, and the proof itself (RFC 6962). Exit status 0 only when
everything verifies, 1 when something does not, 2 on unreadable input.`
	cmd.AddCommand(newVerifyInclusionCmd(g))
	cmd.AddCommand(newVerifyConsistencyCmd(g))
	return cmd
}

// proofIn reads both proof shapes and append --wait receipts, which nest
// the inclusion proof and carry the checkpoint.
type proofIn struct {
	Index      *uint64   `json:"index"`
	TreeSize   *uint64   `json:"treeSize"`
	LeafHash   []byte    `json:"leafHash"`
	Hashes     *[][]byte `json:"hashes"`
	FromSize   *uint64   `json:"fromSize"`
	ToSize     *uint64   `json:"toSize"`
	Inclusion  *proofIn  `json:"inclusion"`
	Checkpoint string    `json:"checkpoint"`
}

type inclusionProof struct {
	index, size uint64
	leafHash    merkle.Hash
	hashes      []merkle.Hash
}

// parseInclusion reads a prove inclusion output or an append --wait
// receipt. Malformed input is an ordinary error (exit 2).
func parseInclusion(b []byte) (*inclusionProof, []byte, error) {
	var in proofIn
	if err := decodeJSON("proof", b, &in); err != nil {
		return nil, nil, err
	}
	var cpNote []byte
	if in.Checkpoint != "" {
		cpNote = []byte(in.Checkpoint)
	}
	p := &in
	if in.Inclusion != nil {
		p = in.Inclusion
		if in.Index != nil && p.Index != nil && *in.Index != *p.Index {
			return nil, nil, fmt.Errorf("%w: receipt index %d differs from its proof's %d", errVerify, *in.Index, *p.Index)
		}
		if in.LeafHash != nil && !bytes.Equal(in.LeafHash, p.LeafHash) {
			return nil, nil, fmt.Errorf("%w: receipt leafHash differs from its proof's", errVerify)
		}
	}
	switch {
	case p.Index == nil:
		return nil, nil, errors.New("proof: missing \"index\"")
	case p.TreeSize == nil:
		return nil, nil, errors.New("proof: missing \"treeSize\"")
	case p.LeafHash == nil:
		return nil, nil, errors.New("proof: missing \"leafHash\"")
	case p.Hashes == nil:
		return nil, nil, errors.New("proof: missing \"hashes\"")
	}
	lh, err := merkle.HashFromBytes(p.LeafHash)
	if err != nil {
		return nil, nil, fmt.Errorf("proof: leafHash: %d bytes, want %d", len(p.LeafHash), merkle.HashSize)
	}
	hs, err := hashList("proof: hashes", *p.Hashes)
	if err != nil {
		return nil, nil, err
	}
	return &inclusionProof{index: *p.Index, size: *p.TreeSize, leafHash: lh, hashes: hs}, cpNote, nil
}

func newVerifyInclusionCmd(g *globals) *cobra.Command {
	var proofFile, cpFile, key, origin, entryFile string
	cmd := &cobra.Command{
		Use:   "inclusion --key VKEY|FILE [--proof FILE] [--checkpoint FILE] [--entry FILE]",
		Short: "Check an inclusion proof against a signed checkpoint",
		Long: `Check offline that an entry is in the log: read an inclusion proof (the
output of "prove inclusion", or a receipt line of "append --wait") from --proof
or stdin, verify the checkpoint (--checkpoint FILE, or the one in the receipt)
with the pinned verifier key, require the proof's tree size to be the
checkpoint's, and check the proof against the signed root. With --entry (the
output of "get"), also check that the proof is about that entry's leaf.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := oneStdin(proofFile, cpFile, entryFile); err != nil {
				return err
			}
			b, err := g.readInput(proofFile)
			if err != nil {
				return err
			}
			p, cpNote, err := parseInclusion(b)
			if err != nil {
				return err
			}
			v, err := loadVerifier(key)
			if err != nil {
				return err
			}
			if cpFile != "" {
				if cpNote, err = g.readInput(cpFile); err != nil {
					return err
				}
			}
			if cpNote == nil {
				return errors.New("--checkpoint is required (the proof carries no checkpoint)")
			}
			cp, err := openCheckpoint("checkpoint", cpNote, v, origin)
			if err != nil {
				return err
			}
			if p.size != cp.Size {
				return fmt.Errorf("%w: the proof is for tree size %d, the checkpoint for size %d", errVerify, p.size, cp.Size)
			}
			if entryFile != "" {
				if err := checkEntryFile(g, entryFile, p); err != nil {
					return err
				}
			}
			if err := merkle.VerifyInclusion(p.leafHash, p.index, p.size, p.hashes, cp.Root); err != nil {
				return fmt.Errorf("%w: %v", errVerify, err)
			}
			_, err = fmt.Fprintf(g.stdout, "verified: entry %d (leaf hash %s) is in the tree of size %d, root %s, of %s\n",
				p.index, b64(p.leafHash[:]), cp.Size, b64(cp.Root[:]), cp.Origin)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&proofFile, "proof", "-", "inclusion proof JSON file (- for stdin)")
	f.StringVar(&cpFile, "checkpoint", "", "signed checkpoint file (default: the receipt's)")
	f.StringVar(&key, "key", "", "checkpoint verifier key, or a file holding it (required)")
	f.StringVar(&origin, "origin", "", "require this checkpoint origin")
	f.StringVar(&entryFile, "entry", "", "output of \"ledgerctl get\": check the proof is about this entry")
	return cmd
}

// checkEntryFile checks that the entry in path (get's output) is the leaf
// the proof is about.
func checkEntryFile(g *globals, path string, p *inclusionProof) error {
	b, err := g.readInput(path)
	if err != nil {
		return err
	}
	var e struct {
		Index *uint64 `json:"index"`
		Leaf  []byte  `json:"leaf"`
	}
	if err := decodeJSON("entry", b, &e); err != nil {
		return err
	}
	if e.Index == nil || e.Leaf == nil {
		return errors.New("entry: want \"index\" and \"leaf\" (the output of ledgerctl get)")
	}
	if *e.Index != p.index {
		return fmt.Errorf("%w: entry is index %d, the proof is for index %d", errVerify, *e.Index, p.index)
	}
	if merkle.LeafHash(e.Leaf) != p.leafHash {
		return fmt.Errorf("%w: the entry's leaf does not hash to the proof's leafHash", errVerify)
	}
	if _, err := ledger.DecodeLeaf(e.Leaf); err != nil {
		return fmt.Errorf("%w: entry %d: %s", errVerify, *e.Index, trimLedgerPrefix(err))
	}
	return nil
}

func newVerifyConsistencyCmd(g *globals) *cobra.Command {
	var proofFile, oldFile, newFile, key, origin string
	cmd := &cobra.Command{
		Use:   "consistency --key VKEY|FILE --old FILE --new FILE [--proof FILE]",
		Short: "Check a consistency proof between two signed checkpoints",
		Long: `Check offline that the log only grew: read a consistency proof (the output of
"prove consistency") from --proof or stdin, verify both checkpoints with the
pinned verifier key, require the same origin, the proof's sizes to be the
checkpoints' sizes, and the proof to lead from the old root to the new one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if oldFile == "" || newFile == "" {
				return errors.New("--old and --new (the two signed checkpoints) are required")
			}
			if err := oneStdin(proofFile, oldFile, newFile); err != nil {
				return err
			}
			b, err := g.readInput(proofFile)
			if err != nil {
				return err
			}
			var in proofIn
			if err := decodeJSON("proof", b, &in); err != nil {
				return err
			}
			switch {
			case in.FromSize == nil:
				return errors.New("proof: missing \"fromSize\"")
			case in.ToSize == nil:
				return errors.New("proof: missing \"toSize\"")
			case in.Hashes == nil:
				return errors.New("proof: missing \"hashes\"")
			}
			hs, err := hashList("proof: hashes", *in.Hashes)
			if err != nil {
				return err
			}
			v, err := loadVerifier(key)
			if err != nil {
				return err
			}
			oldNote, err := g.readInput(oldFile)
			if err != nil {
				return err
			}
			newNote, err := g.readInput(newFile)
			if err != nil {
				return err
			}
			oldCP, err := openCheckpoint("old checkpoint", oldNote, v, origin)
			if err != nil {
				return err
			}
			newCP, err := openCheckpoint("new checkpoint", newNote, v, oldCP.Origin)
			if err != nil {
				return err
			}
			if *in.FromSize != oldCP.Size || *in.ToSize != newCP.Size {
				return fmt.Errorf("%w: the proof is from size %d to %d, the checkpoints are of sizes %d and %d",
					errVerify, *in.FromSize, *in.ToSize, oldCP.Size, newCP.Size)
			}
			if err := merkle.VerifyConsistency(oldCP.Size, newCP.Size, hs, oldCP.Root, newCP.Root); err != nil {
				return fmt.Errorf("%w: %v", errVerify, err)
			}
			_, err = fmt.Fprintf(g.stdout, "verified: the tree of size %d (root %s) extends the tree of size %d (root %s) of %s\n",
				newCP.Size, b64(newCP.Root[:]), oldCP.Size, b64(oldCP.Root[:]), oldCP.Origin)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&proofFile, "proof", "-", "consistency proof JSON file (- for stdin)")
	f.StringVar(&oldFile, "old", "", "the older signed checkpoint file (required)")
	f.StringVar(&newFile, "new", "", "the newer signed checkpoint file (required)")
	f.StringVar(&key, "key", "", "checkpoint verifier key, or a file holding it (required)")
	f.StringVar(&origin, "origin", "", "require this checkpoint origin")
	return cmd
}

// oneStdin rejects reading more than one input from stdin ("-"); the
// first path is the proof, which defaults to stdin.
func oneStdin(paths ...string) error {
	n := 0
	for _, p := range paths {
		if p == "-" {
			n++
		}
	}
	if n > 1 {
		return errors.New("only one input can come from stdin (-): give the proof with --proof FILE")
	}
	return nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
