package ledger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"path/filepath"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/auditledger/ledgerd/merkle"
)

// Snapshot stream format (all integers big-endian unless said otherwise):
//
//	magic "ledgerd-snapshot-1\n"
//	header: size:8 | lastApplied:8 | root:32        (the TreeState)
//	records: uvarint(len(key)) key uvarint(len(value)) value, keys strictly increasing, len(key) > 0
//	end: uvarint(0) | count:8 | crc32c:4            (CRC over every byte before it)
//
// The stream holds every key of the Pebble database, so it carries the
// reserved tables of other packages too.
const snapshotMagic = "ledgerd-snapshot-1\n"

const snapshotHeaderLen = len(snapshotMagic) + 8 + 8 + merkle.HashSize

// restoreTableSize is the size at which Restore starts a new sstable.
const restoreTableSize = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot is a consistent, point-in-time view of a Store, taken by
// Store.Snapshot. It pins Pebble state until Close.
type Snapshot struct {
	State TreeState
	snap  *pebble.Snapshot
}

// Snapshot captures the committed state. It is cheap (no copying): the
// caller streams it out later with WriteTo, while Apply goes on, and must
// Close it.
func (s *Store) Snapshot() (*Snapshot, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.db == nil {
		return nil, ErrClosed
	}
	return &Snapshot{State: s.prep, snap: s.db.NewSnapshot()}, nil // prep: what the Pebble snapshot holds
}

// Close releases the snapshot.
func (sn *Snapshot) Close() error { return sn.snap.Close() }

// WriteTo streams the snapshot to w in the format Restore reads.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &crcWriter{w: w, crc: crc32.New(castagnoli)}
	bw := bufio.NewWriterSize(cw, 1<<20)
	bw.WriteString(snapshotMagic)
	var hdr [8 + 8 + merkle.HashSize]byte
	binary.BigEndian.PutUint64(hdr[0:], sn.State.Size)
	binary.BigEndian.PutUint64(hdr[8:], sn.State.LastApplied)
	copy(hdr[16:], sn.State.Root[:])
	bw.Write(hdr[:])

	it, err := sn.snap.NewIter(nil)
	if err != nil {
		return cw.n, fmt.Errorf("ledger: snapshot: %w", err)
	}
	var count uint64
	var lenBuf [binary.MaxVarintLen64]byte
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return cw.n, fmt.Errorf("ledger: snapshot: %w", err)
		}
		if len(k) == 0 {
			continue // never written by this package; keeps 0 free as the end marker
		}
		bw.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(k)))])
		bw.Write(k)
		bw.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(v)))])
		if _, err := bw.Write(v); err != nil {
			it.Close()
			return cw.n, fmt.Errorf("ledger: snapshot: write: %w", err)
		}
		count++
	}
	if err := it.Close(); err != nil {
		return cw.n, fmt.Errorf("ledger: snapshot: %w", err)
	}
	bw.WriteByte(0)
	var cnt [8]byte
	binary.BigEndian.PutUint64(cnt[:], count)
	bw.Write(cnt[:])
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("ledger: snapshot: write: %w", err)
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], cw.crc.Sum32())
	n, err := w.Write(sum[:])
	cw.n += int64(n)
	if err != nil {
		return cw.n, fmt.Errorf("ledger: snapshot: write: %w", err)
	}
	return cw.n, nil
}

type crcWriter struct {
	w   io.Writer
	crc hash.Hash32
	n   int64
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// SnapshotState reads the header of a snapshot stream without consuming
// it, so that a caller can decide whether Restore is needed.
func SnapshotState(r *bufio.Reader) (TreeState, error) {
	b, err := r.Peek(snapshotHeaderLen)
	if err != nil {
		return TreeState{}, fmt.Errorf("%w: snapshot header: %v", ErrCorrupt, err)
	}
	return parseSnapshotHeader(b)
}

func parseSnapshotHeader(b []byte) (TreeState, error) {
	if string(b[:len(snapshotMagic)]) != snapshotMagic {
		return TreeState{}, fmt.Errorf("%w: not a ledger snapshot", ErrCorrupt)
	}
	b = b[len(snapshotMagic):]
	return TreeState{
		Size:        binary.BigEndian.Uint64(b[0:]),
		LastApplied: binary.BigEndian.Uint64(b[8:]),
		Root:        merkle.Hash(b[16 : 16+merkle.HashSize]),
	}, nil
}

// Restore replaces the whole content of the store with a snapshot written
// by Snapshot.WriteTo, and reloads the in-memory tree.
//
// It is atomic: the stream is first written into sstables in a staging
// directory next to the data and fully checked (checksum, key order,
// count, tree state); only then is it ingested with one
// IngestAndExcise, which deletes every existing key and adds the new
// ones in a single Pebble version edit. A crash or a bad stream at any
// point leaves either the old state or the new one, never a mix. The
// Pebble handle stays the same, so concurrent readers keep working; they
// see the old state until the new one is published.
//
// Restore is serialised with Apply.
func (s *Store) Restore(r io.Reader) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.db == nil {
		return ErrClosed
	}
	if errp := s.failed.Load(); errp != nil {
		return *errp
	}
	fs := s.fs
	if fs == nil {
		fs = vfs.Default
	}
	stage := filepath.Join(s.dir, "restore.tmp")
	if err := fs.RemoveAll(stage); err != nil {
		return fmt.Errorf("ledger: restore: clear staging dir: %w", err)
	}
	if err := fs.MkdirAll(stage, 0o700); err != nil {
		return fmt.Errorf("ledger: restore: staging dir: %w", err)
	}
	defer fs.RemoveAll(stage)

	paths, hdr, err := s.stageSnapshot(fs, stage, r)
	if err != nil {
		return err
	}
	// Flush first so the ingest does not have to go through the memtable;
	// then excise every key and add the snapshot's, atomically.
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("ledger: restore: flush: %w", err)
	}
	span := pebble.KeyRange{Start: []byte{}, End: []byte{0xff}}
	if _, err := s.db.IngestAndExcise(context.Background(), paths, nil, nil, span); err != nil {
		return s.poison(fmt.Errorf("ledger: restore: ingest: %w", err))
	}
	s.kvWrites.Add(1) // every table may have changed
	s.tiles.reset()
	for i := range s.edge {
		s.edge[i] = nil
	}
	if err := s.load(); err != nil {
		return s.poison(fmt.Errorf("ledger: restore: reload: %w", err))
	}
	if st := s.State(); st.Size != hdr.Size || st.Root != hdr.Root || st.LastApplied != hdr.LastApplied {
		return s.poison(fmt.Errorf("%w: restored state (size %d, applied %d) does not match the snapshot header (size %d, applied %d)",
			ErrCorrupt, st.Size, st.LastApplied, hdr.Size, hdr.LastApplied))
	}
	s.notify()
	return nil
}

// stageSnapshot reads the whole stream into sstables under stage and
// checks it. Nothing in the database changes.
func (s *Store) stageSnapshot(fs vfs.FS, stage string, r io.Reader) ([]string, TreeState, error) {
	raw := bufio.NewReaderSize(r, 1<<20)
	br := &crcReader{r: raw, crc: crc32.New(castagnoli)}
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: snapshot: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	head := make([]byte, snapshotHeaderLen)
	if _, err := io.ReadFull(br, head); err != nil {
		return nil, TreeState{}, corrupt("header: %v", err)
	}
	hdr, err := parseSnapshotHeader(head)
	if err != nil {
		return nil, TreeState{}, err
	}

	var (
		paths   []string
		w       *sstable.Writer
		prev    []byte
		count   uint64
		written uint64
		state   []byte
		format  []byte
	)
	wopts := sstable.WriterOptions{TableFormat: s.db.TableFormat(), Comparer: pebble.DefaultComparer}
	finish := func() error {
		if w == nil {
			return nil
		}
		err := w.Close()
		w = nil
		return err
	}
	fail := func(err error) ([]string, TreeState, error) {
		if w != nil {
			w.Close()
		}
		return nil, TreeState{}, err
	}
	var key, val []byte
	for {
		klen, err := binary.ReadUvarint(br)
		if err != nil {
			return fail(corrupt("key length: %v", err))
		}
		if klen == 0 {
			break
		}
		if klen > 1<<20 {
			return fail(corrupt("key of %d bytes", klen))
		}
		key = growTo(key, int(klen))
		if _, err := io.ReadFull(br, key); err != nil {
			return fail(corrupt("key: %v", err))
		}
		vlen, err := binary.ReadUvarint(br)
		if err != nil || vlen > 1<<30 {
			return fail(corrupt("value length"))
		}
		val = growTo(val, int(vlen))
		if _, err := io.ReadFull(br, val); err != nil {
			return fail(corrupt("value: %v", err))
		}
		if prev != nil && bytes.Compare(prev, key) >= 0 {
			return fail(corrupt("keys out of order at record %d", count))
		}
		if key[0] == 0xff {
			return fail(corrupt("key %q outside the key space", key))
		}
		prev = append(prev[:0], key...)
		switch {
		case bytes.Equal(key, keyState):
			state = bytes.Clone(val)
		case bytes.Equal(key, keyFormat):
			format = bytes.Clone(val)
		}
		if w == nil {
			p := filepath.Join(stage, strconv.Itoa(len(paths))+".sst")
			f, err := fs.Create(p, vfs.WriteCategoryUnspecified)
			if err != nil {
				return fail(fmt.Errorf("ledger: restore: %w", err))
			}
			w = sstable.NewWriter(objstorageprovider.NewFileWritable(f), wopts)
			paths = append(paths, p)
			written = 0
		}
		if err := w.Set(key, val); err != nil {
			return fail(fmt.Errorf("ledger: restore: write sstable: %w", err))
		}
		count++
		written += uint64(len(key) + len(val))
		if written >= restoreTableSize {
			if err := finish(); err != nil {
				return fail(fmt.Errorf("ledger: restore: write sstable: %w", err))
			}
		}
	}
	if err := finish(); err != nil {
		return fail(fmt.Errorf("ledger: restore: write sstable: %w", err))
	}
	var cnt [8]byte
	if _, err := io.ReadFull(br, cnt[:]); err != nil {
		return nil, TreeState{}, corrupt("trailer: %v", err)
	}
	if got := binary.BigEndian.Uint64(cnt[:]); got != count {
		return nil, TreeState{}, corrupt("%d records, trailer says %d", count, got)
	}
	want := br.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(raw, sum[:]); err != nil {
		return nil, TreeState{}, corrupt("checksum: %v", err)
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return nil, TreeState{}, corrupt("checksum %08x, computed %08x", got, want)
	}
	if _, err := raw.ReadByte(); err != io.EOF {
		return nil, TreeState{}, corrupt("bytes after the checksum")
	}
	if string(format) != keySpaceVersion && string(format) != "1" { // 1: upgraded by load
		return nil, TreeState{}, corrupt("key-space version %q, want %q", format, keySpaceVersion)
	}
	if state == nil {
		if hdr.Size != 0 || hdr.LastApplied != 0 {
			return nil, TreeState{}, corrupt("no tree state")
		}
	} else {
		size, applied, frontier, err := decodeState(state)
		if err != nil {
			return nil, TreeState{}, err
		}
		rng, err := merkle.RestoreRange(size, frontier)
		if err != nil {
			return nil, TreeState{}, corrupt("tree state: %v", err)
		}
		if size != hdr.Size || applied != hdr.LastApplied || rng.Root() != hdr.Root {
			return nil, TreeState{}, corrupt("tree state does not match the header")
		}
	}
	return paths, hdr, nil
}

func growTo(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// tiles reset: a restore may replace the tree, so forget every cached tile.
func (c *tileCache) reset() { c.forget() }

// crcReader checksums the bytes its caller consumes.
type crcReader struct {
	r   *bufio.Reader
	crc hash.Hash32
	one [1]byte
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.crc.Write(p[:n])
	return n, err
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.one[0] = b
		c.crc.Write(c.one[:])
	}
	return b, err
}
