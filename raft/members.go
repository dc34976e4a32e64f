package raft

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"

	"github.com/auditledger/ledgerd/ledger"
)

// The membership table maps node ids to the addresses Raft does not
// keep: a node's gRPC API address, which followers need to forward
// writes to the leader and which status and the divergence check dial.
// It lives in the ledger's reserved table c/ and is replicated like
// everything else (KV commands), so it is in snapshots too:
//
//	c/member/<node id> → JSON {"raft": "...", "api": "..."}
var memberPrefix = []byte("c/member/")

// Member is one row of the membership table.
type Member struct {
	ID   string `json:"-"`
	Raft string `json:"raft"`
	API  string `json:"api"`
}

func memberKey(id string) []byte { return append(bytes.Clone(memberPrefix), id...) }

func memberOp(m Member) ledger.KV {
	v, _ := json.Marshal(m)
	return ledger.KV{Key: memberKey(m.ID), Value: v}
}

// member reads one row; ok is false when the node has none.
func member(st *ledger.Store, id string) (Member, bool, error) {
	v, err := st.Get(memberKey(id))
	if errors.Is(err, ledger.ErrNotFound) {
		return Member{}, false, nil
	}
	if err != nil {
		return Member{}, false, err
	}
	m := Member{ID: id}
	if err := json.Unmarshal(v, &m); err != nil {
		return Member{}, false, fmt.Errorf("%w: member %q: %v", ledger.ErrCorrupt, id, err)
	}
	return m, true, nil
}

// members reads the whole table, in id order.
func members(st *ledger.Store) ([]Member, error) {
	upper := bytes.Clone(memberPrefix)
	upper[len(upper)-1]++
	it, err := st.DB().NewIter(&pebble.IterOptions{LowerBound: memberPrefix, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Member
	for ok := it.First(); ok; ok = it.Next() {
		m := Member{ID: string(it.Key()[len(memberPrefix):])}
		if err := json.Unmarshal(it.Value(), &m); err != nil {
			return nil, fmt.Errorf("%w: member %q: %v", ledger.ErrCorrupt, m.ID, err)
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, it.Error()
}
