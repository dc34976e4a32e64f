package ledger

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/auditledger/ledgerd/merkle"
)

// Checkpoint is a signed tree head in the C2SP tlog-checkpoint format:
// a signed note whose text is "<origin>\n<size>\n<base64 root>\n".
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   merkle.Hash
	Note   []byte // the signed note, exactly as signed
}

// CheckpointText is the note text of a checkpoint.
func CheckpointText(origin string, size uint64, root merkle.Hash) string {
	return origin + "\n" + strconv.FormatUint(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n"
}

// SignCheckpoint signs (origin, size, root). Ed25519 is deterministic, so
// every node holding the same key signs the same bytes.
func SignCheckpoint(s note.Signer, origin string, size uint64, root merkle.Hash) (*Checkpoint, error) {
	msg, err := note.Sign(&note.Note{Text: CheckpointText(origin, size, root)}, s)
	if err != nil {
		return nil, fmt.Errorf("ledger: sign checkpoint: %w", err)
	}
	return &Checkpoint{Origin: origin, Size: size, Root: root, Note: msg}, nil
}

// OpenCheckpoint verifies a signed checkpoint note with the given verifier
// and parses it. When origin is not empty it must match the note's.
func OpenCheckpoint(msg []byte, v note.Verifier, origin string) (*Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint signature: %v", ErrInvalid, err)
	}
	cp, err := ParseCheckpointText(n.Text)
	if err != nil {
		return nil, err
	}
	if origin != "" && cp.Origin != origin {
		return nil, fmt.Errorf("%w: checkpoint origin %q, want %q", ErrInvalid, cp.Origin, origin)
	}
	cp.Note = bytes.Clone(msg)
	return cp, nil
}

// ParseCheckpointText parses the (unsigned) text of a checkpoint. Extra
// extension lines after the root are allowed and ignored.
func ParseCheckpointText(text string) (*Checkpoint, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 || lines[0] == "" {
		return nil, fmt.Errorf("%w: checkpoint: want origin, size and root lines", ErrInvalid)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return nil, fmt.Errorf("%w: checkpoint: bad size %q", ErrInvalid, lines[1])
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(raw) != merkle.HashSize {
		return nil, fmt.Errorf("%w: checkpoint: bad root hash %q", ErrInvalid, lines[2])
	}
	return &Checkpoint{Origin: lines[0], Size: size, Root: merkle.Hash(raw)}, nil
}
