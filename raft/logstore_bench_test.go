package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	hraft "github.com/hashicorp/raft"

	"github.com/auditledger/ledgerd/ledger"
)

// The log store comparison behind Config.LogStore's default. Three nodes
// on loopback TCP, each with the log store under test (fsync on), apply
// commands from many concurrent proposers on the leader:
//
//	go test ./raft -run '^$' -bench LogStore -benchtime 3000x
//
// small: 64 proposers, one 100-byte KV write per command (the cost is the
// log's append+fsync and Raft's round trips); batch: 4 proposers, one
// 1000-leaf (~300 KB) ledger batch per command (the cost is bytes).
func BenchmarkLogStore(b *testing.B) {
	for _, store := range []string{"wal", "bolt", "pebble"} {
		for _, kind := range []string{"small", "batch"} {
			b.Run(store+"/"+kind, func(b *testing.B) { benchLogStore(b, store, kind) })
		}
	}
}

func benchLogStore(b *testing.B, store, kind string) {
	nodes := make([]*Node, 3)
	for i := range nodes {
		cfg := Config{ID: fmt.Sprintf("n%d", i+1), Dir: b.TempDir(), Store: openTestStore(b), RaftAddr: "127.0.0.1:0", Logger: testLogger(), CheckInterval: -1}
		if store == "pebble" {
			ps, err := openPebbleLogStore(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			cfg.logStore = ps
		} else {
			cfg.LogStore = store
		}
		n, err := Open(cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer n.Close()
		nodes[i] = n
	}
	if err := nodes[0].Bootstrap(); err != nil {
		b.Fatal(err)
	}
	eventually(b, 10*time.Second, "a leader", nodes[0].IsLeader)
	for _, n := range nodes[1:] {
		if f := nodes[0].raft.AddVoter(hraft.ServerID(n.ID()), hraft.ServerAddress(n.RaftAddr()), 0, 0); f.Error() != nil {
			b.Fatal(f.Error())
		}
	}
	proposers, payload := 64, func(p, i int) []byte {
		return encodeKV([]ledger.KV{{Key: fmt.Appendf(nil, "f/bench-%d", p), Value: make([]byte, 100)}})
	}
	if kind == "batch" {
		proposers = 4
		payload = func(p, i int) []byte {
			leaves := make([][]byte, 1000)
			for j := range leaves {
				leaves[j] = testLeaf(fmt.Sprintf("%d-%d-%d-%s", p, i, j, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), int64(j))
			}
			return encodeLeaves(leaves)
		}
	}
	leader := nodes[0]
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for p := 0; p < proposers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > b.N {
					return
				}
				if _, err := applyResult(leader.raft.Apply(payload(p, i), 10*time.Second)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "commands/s")
}

// pebbleLogStore is a Pebble-backed hraft.LogStore and StableStore, for
// the comparison only: every StoreLogs is one synced Pebble batch.
type pebbleLogStore struct{ db *pebble.DB }

func openPebbleLogStore(dir string) (*pebbleLogStore, error) {
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		return nil, err
	}
	return &pebbleLogStore{db}, nil
}

func logKey(i uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'l'}, i) }

func (s *pebbleLogStore) edge(first bool) (uint64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'l'}, UpperBound: []byte{'m'}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	ok := it.Last()
	if first {
		ok = it.First()
	}
	if !ok {
		return 0, nil
	}
	return binary.BigEndian.Uint64(it.Key()[1:]), nil
}

func (s *pebbleLogStore) FirstIndex() (uint64, error) { return s.edge(true) }
func (s *pebbleLogStore) LastIndex() (uint64, error)  { return s.edge(false) }

func (s *pebbleLogStore) GetLog(i uint64, l *hraft.Log) error {
	v, c, err := s.db.Get(logKey(i))
	if errors.Is(err, pebble.ErrNotFound) {
		return hraft.ErrLogNotFound
	}
	if err != nil {
		return err
	}
	defer c.Close()
	l.Index = binary.BigEndian.Uint64(v)
	l.Term = binary.BigEndian.Uint64(v[8:])
	l.Type = hraft.LogType(v[16])
	l.AppendedAt = time.Unix(0, int64(binary.BigEndian.Uint64(v[17:])))
	n := binary.BigEndian.Uint32(v[25:])
	l.Data = append([]byte(nil), v[29:29+n]...)
	l.Extensions = append([]byte(nil), v[29+n:]...)
	return nil
}

func (s *pebbleLogStore) StoreLog(l *hraft.Log) error { return s.StoreLogs([]*hraft.Log{l}) }

func (s *pebbleLogStore) StoreLogs(logs []*hraft.Log) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, l := range logs {
		v := make([]byte, 29, 29+len(l.Data)+len(l.Extensions))
		binary.BigEndian.PutUint64(v, l.Index)
		binary.BigEndian.PutUint64(v[8:], l.Term)
		v[16] = byte(l.Type)
		binary.BigEndian.PutUint64(v[17:], uint64(l.AppendedAt.UnixNano()))
		binary.BigEndian.PutUint32(v[25:], uint32(len(l.Data)))
		v = append(append(v, l.Data...), l.Extensions...)
		b.Set(logKey(l.Index), v, nil)
	}
	return b.Commit(pebble.Sync)
}

func (s *pebbleLogStore) DeleteRange(lo, hi uint64) error {
	return s.db.DeleteRange(logKey(lo), logKey(hi+1), pebble.Sync)
}

func (s *pebbleLogStore) Set(k, v []byte) error {
	return s.db.Set(append([]byte{'s'}, k...), v, pebble.Sync)
}

func (s *pebbleLogStore) Get(k []byte) ([]byte, error) {
	v, c, err := s.db.Get(append([]byte{'s'}, k...))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, errors.New("not found")
	}
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return append([]byte(nil), v...), nil
}

func (s *pebbleLogStore) SetUint64(k []byte, v uint64) error {
	return s.Set(k, binary.BigEndian.AppendUint64(nil, v))
}

func (s *pebbleLogStore) GetUint64(k []byte) (uint64, error) {
	v, err := s.Get(k)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(v), nil
}

func (s *pebbleLogStore) Close() error { return s.db.Close() }
