package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/auditledger/ledgerd/ledger"
)

// A command is the payload of one Raft log entry:
//
//	version:1 (=1) | kind:1 | body | crc32c:4 (Castagnoli, over everything before it, big-endian)
//
//	kind 1, leaves: uvarint(n) n × (uvarint(len) leaf)
//	kind 2, kv:     uvarint(n) n × (flags:1 uvarint(len) key uvarint(len) value)   flags bit 0: delete
//
// The checksum catches a log entry damaged on disk or on the wire before
// it reaches the state machine; the FSM stops applying rather than apply
// something else than the leader proposed.
const (
	commandVersion = 1
	kindLeaves     = 1
	kindKV         = 2
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	// errBadCommand reports a log entry that does not decode.
	errBadCommand = errors.New("raft: bad command")
)

type command struct {
	kind   byte
	leaves [][]byte
	ops    []ledger.KV
}

func encodeLeaves(leaves [][]byte) []byte {
	n := 2 + binary.MaxVarintLen64 + 4
	for _, l := range leaves {
		n += binary.MaxVarintLen32 + len(l)
	}
	b := make([]byte, 0, n)
	b = append(b, commandVersion, kindLeaves)
	b = binary.AppendUvarint(b, uint64(len(leaves)))
	for _, l := range leaves {
		b = binary.AppendUvarint(b, uint64(len(l)))
		b = append(b, l...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func encodeKV(ops []ledger.KV) []byte {
	n := 2 + binary.MaxVarintLen64 + 4
	for _, op := range ops {
		n += 1 + 2*binary.MaxVarintLen32 + len(op.Key) + len(op.Value)
	}
	b := make([]byte, 0, n)
	b = append(b, commandVersion, kindKV)
	b = binary.AppendUvarint(b, uint64(len(ops)))
	for _, op := range ops {
		var flags byte
		if op.Delete {
			flags = 1
		}
		b = append(b, flags)
		b = binary.AppendUvarint(b, uint64(len(op.Key)))
		b = append(b, op.Key...)
		b = binary.AppendUvarint(b, uint64(len(op.Value)))
		b = append(b, op.Value...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeCommand decodes a log entry. The returned slices alias data.
func decodeCommand(data []byte) (command, error) {
	if len(data) < 2+1+4 {
		return command{}, fmt.Errorf("%w: %d bytes", errBadCommand, len(data))
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return command{}, fmt.Errorf("%w: checksum mismatch", errBadCommand)
	}
	if body[0] != commandVersion {
		return command{}, fmt.Errorf("%w: version %d", errBadCommand, body[0])
	}
	cmd := command{kind: body[1]}
	r := reader{b: body[2:]}
	n := r.uvarint()
	if n > uint64(len(r.b)) { // every item takes at least one byte
		return command{}, fmt.Errorf("%w: %d items in %d bytes", errBadCommand, n, len(r.b))
	}
	switch cmd.kind {
	case kindLeaves:
		cmd.leaves = make([][]byte, n)
		for i := range cmd.leaves {
			cmd.leaves[i] = r.bytes()
		}
	case kindKV:
		cmd.ops = make([]ledger.KV, n)
		for i := range cmd.ops {
			flags := r.byte()
			cmd.ops[i] = ledger.KV{Key: r.bytes(), Value: r.bytes(), Delete: flags&1 != 0}
			if flags&^1 != 0 {
				r.err = true
			}
		}
	default:
		return command{}, fmt.Errorf("%w: kind %d", errBadCommand, cmd.kind)
	}
	if r.err || len(r.b) != 0 {
		return command{}, fmt.Errorf("%w: malformed body", errBadCommand)
	}
	return cmd, nil
}

type reader struct {
	b   []byte
	err bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.err = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err, r.b = true, nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}
