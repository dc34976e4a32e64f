package raft

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/merkle"
)

// The divergence alarm. Every node holding the same tree size must hold
// the same root (the cheap safety net against bugs such as
// hashicorp/raft#695). Periodically, and whenever cluster status is
// asked, a node compares itself with every other member at a common
// size: a peer at least as big as us reports its root at our size; a
// smaller peer's root is compared with ours at its size. Comparing each
// peer with one node is enough: equal roots at a size mean equal leaves
// up to it, hence equal roots at every smaller size.
//
// A mismatch is logged as an error, counted, kept (the alarm stays on
// until restart) and makes Healthy fail.

// peerStatuses asks every other member for its status, with its root at
// our size. Unreachable members get state "unreachable".
func (n *Node) peerStatuses(ctx context.Context, rootAt uint64) ([]*pb.ClusterNodeStatus, error) {
	servers, err := n.configuration()
	if err != nil {
		return nil, err
	}
	rows, err := n.Members()
	if err != nil {
		return nil, err
	}
	api := make(map[string]string, len(rows))
	for _, m := range rows {
		api[m.ID] = m.API
	}
	out := make([]*pb.ClusterNodeStatus, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		id := string(s.ID)
		if id == n.cfg.ID {
			out[i] = n.LocalStatus(rootAt)
			continue
		}
		out[i] = &pb.ClusterNodeStatus{NodeId: id, RaftAddr: string(s.Address), ApiAddr: api[id], Voter: s.Suffrage == hraft.Voter, State: "unreachable"}
		if api[id] == "" {
			out[i].Error = "no API address in the membership table"
			continue
		}
		wg.Add(1)
		go func(i int, s hraft.Server) {
			defer wg.Done()
			st, err := n.nodeStatus(ctx, api[id], rootAt)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			st.Voter = s.Suffrage == hraft.Voter
			out[i] = st
		}(i, s)
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].NodeId < out[j].NodeId })
	return out, nil
}

func (n *Node) nodeStatus(ctx context.Context, addr string, rootAt uint64) (*pb.ClusterNodeStatus, error) {
	cl, err := n.peers.client(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := cl.NodeStatus(n.peers.outgoing(ctx), &pb.ClusterNodeStatusRequest{RootAtSize: rootAt})
	if err != nil {
		return nil, fromStatus(err)
	}
	return st, nil
}

// compareRoots checks peer statuses against this node's tree and
// returns one line per mismatch.
func (n *Node) compareRoots(statuses []*pb.ClusterNodeStatus) []string {
	var out []string
	for _, st := range statuses {
		if st.NodeId == n.cfg.ID || st.State == "unreachable" {
			continue
		}
		size, theirs := st.RootAtSize, st.RootAt
		if len(theirs) == 0 { // the peer is smaller than we were: compare at its size
			size, theirs = st.TreeSize, st.RootHash
		}
		if size == 0 || len(theirs) != merkle.HashSize {
			continue
		}
		ours, err := n.cfg.Store.RootAt(size)
		if err != nil {
			continue // the peer is ahead of us at a size we do not hold yet
		}
		if ours != merkle.Hash(theirs) {
			out = append(out, fmt.Sprintf("at tree size %d node %s has root %x, node %s has %x", size, n.cfg.ID, ours[:], st.NodeId, theirs))
		}
	}
	return out
}

func (n *Node) checkDivergence(ctx context.Context) {
	size := n.cfg.Store.State().Size
	statuses, err := n.peerStatuses(ctx, size)
	if err != nil {
		n.countCheck("error")
		return
	}
	bad := n.compareRoots(statuses)
	if len(bad) == 0 {
		n.countCheck("ok")
		return
	}
	n.countCheck("mismatch")
	for _, b := range bad {
		n.log.Error("raft: DIVERGENCE: nodes disagree about the root at the same tree size", "detail", b)
	}
	msg := bad[0]
	n.divergence.CompareAndSwap(nil, &msg)
}

func (n *Node) countCheck(result string) {
	if n.metrics != nil {
		n.metrics.checks.WithLabelValues(result).Inc()
	}
}

// ClusterStatus asks every member for its status (this node answers for
// itself) and compares their roots with this node's.
func (n *Node) ClusterStatus(ctx context.Context) (*pb.ClusterStatusResponse, error) {
	statuses, err := n.peerStatuses(ctx, n.cfg.Store.State().Size)
	if err != nil {
		return nil, err
	}
	resp := &pb.ClusterStatusResponse{LeaderId: n.Leader(), Nodes: statuses, Divergence: n.compareRoots(statuses)}
	for _, st := range statuses {
		if st.Divergence != "" {
			resp.Divergence = append(resp.Divergence, "node "+st.NodeId+" alarm: "+st.Divergence)
		}
	}
	return resp, nil
}
