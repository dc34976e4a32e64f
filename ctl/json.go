package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/auditledger/ledgerd/ledger"
	"github.com/auditledger/ledgerd/merkle"
)

// The JSON shapes of the output contract (see doc.go). []byte fields
// marshal as standard base64.

// inclusionJSON is the output of prove inclusion.
type inclusionJSON struct {
	Index    uint64   `json:"index"`
	TreeSize uint64   `json:"treeSize"`
	LeafHash []byte   `json:"leafHash"`
	Hashes   [][]byte `json:"hashes"`
}

// consistencyJSON is the output of prove consistency.
type consistencyJSON struct {
	FromSize uint64   `json:"fromSize"`
	ToSize   uint64   `json:"toSize"`
	Hashes   [][]byte `json:"hashes"`
}

// appendLine is one line of append's output.
type appendLine struct {
	Index      uint64         `json:"index"`
	ID         string         `json:"id"`
	LeafHash   []byte         `json:"leafHash"`
	Signature  []byte         `json:"signature"`
	Duplicate  bool           `json:"duplicate,omitempty"`
	Inclusion  *inclusionJSON `json:"inclusion,omitempty"`
	Checkpoint string         `json:"checkpoint,omitempty"`
}

// entryJSON is the output of get.
type entryJSON struct {
	Index      uint64          `json:"index"`
	Leaf       []byte          `json:"leaf"`
	Event      json.RawMessage `json:"event"`
	LeafHash   []byte          `json:"leafHash,omitempty"`
	ReceivedAt string          `json:"receivedAt,omitempty"`
	KeyID      string          `json:"keyId,omitempty"`
	Signature  []byte          `json:"signature,omitempty"`
}

// nonNil keeps empty proofs printing as [] rather than null.
func nonNil(hs [][]byte) [][]byte {
	if hs == nil {
		return [][]byte{}
	}
	return hs
}

// hashList converts proof hashes, naming the first one of the wrong size.
func hashList(what string, bs [][]byte) ([]merkle.Hash, error) {
	out := make([]merkle.Hash, len(bs))
	for i, b := range bs {
		h, err := merkle.HashFromBytes(b)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %d bytes, want %d", what, i, len(b), merkle.HashSize)
		}
		out[i] = h
	}
	return out, nil
}

// readInput reads a file, or stdin when path is "" or "-".
func (g *globals) readInput(path string) ([]byte, error) {
	if path == "" || path == "-" {
		b, err := io.ReadAll(g.stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// decodeJSON decodes exactly one JSON value from b into v.
func decodeJSON(what string, b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if dec.More() {
		return fmt.Errorf("%s: more than one JSON value", what)
	}
	return nil
}

// loadVerifier parses a note verifier key given inline
// (name+hash+base64key) or as a file holding one.
func loadVerifier(arg string) (note.Verifier, error) {
	if arg == "" {
		return nil, errors.New("--key is required: the checkpoint verifier key (or a file holding it), as printed by ledgerctl pubkey")
	}
	if v, err := note.NewVerifier(strings.TrimSpace(arg)); err == nil {
		return v, nil
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		return nil, fmt.Errorf("--key %q is neither a verifier key nor a readable file", arg)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("--key file %s: not a note verifier key: %v", arg, err)
	}
	return v, nil
}

// normalizeNote trims trailing blank lines an editor or shell may add to
// a saved checkpoint; a signed note ends with exactly one newline.
func normalizeNote(b []byte) []byte {
	b = bytes.TrimRight(b, " \t\r\n")
	return append(bytes.Clone(b), '\n')
}

// openCheckpoint verifies a signed checkpoint with v (and origin when not
// empty). Signature and format failures are verification failures.
func openCheckpoint(what string, noteBytes []byte, v note.Verifier, origin string) (*ledger.Checkpoint, error) {
	cp, err := ledger.OpenCheckpoint(normalizeNote(noteBytes), v, origin)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %s", errVerify, what, strings.TrimPrefix(err.Error(), ledger.ErrInvalid.Error()+": "))
	}
	return cp, nil
}
