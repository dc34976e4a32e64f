package raft

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	"go.uber.org/goleak"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/auditledger/ledgerd/ledger"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// hashicorp/go-metrics' global in-memory sink, started at init.
		goleak.IgnoreTopFunction("github.com/hashicorp/go-metrics.(*InmemSignal).run"),
		goleak.IgnoreTopFunction("github.com/armon/go-metrics.(*InmemSignal).run"),
		// A leader closing hands leadership over (Node.Close); when the
		// chosen peer was cut off by a test, hashicorp/raft's transfer
		// goroutines wait out the in-memory transport's 5 s RPC timeout
		// after Shutdown returned. They end on their own.
		goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*InmemTransport).makeRPC"),
		goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*Raft).leaderLoop.func2"),
	)
}

// testLogger is quiet unless RAFT_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("RAFT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// keys shared by every node of a test cluster.
type clusterKeys struct {
	signer note.Signer
	hmac   *ledger.Keyring
}

func newClusterKeys(t testing.TB) clusterKeys {
	skey, _, err := note.GenerateKey(rand.Reader, "test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	hk := make([]byte, 32)
	rand.Read(hk)
	ring, err := ledger.NewKeyring(hk)
	if err != nil {
		t.Fatal(err)
	}
	return clusterKeys{signer, ring}
}

// partitions is fault injection for the gRPC side: calls between two
// cut nodes fail with Unavailable, like the Raft messages the in-memory
// transport drops.
type partitions struct {
	mu  sync.Mutex
	cut map[[2]string]bool
}

func (p *partitions) set(a, b string, cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut == nil {
		p.cut = make(map[[2]string]bool)
	}
	p.cut[[2]string{a, b}] = cut
	p.cut[[2]string{b, a}] = cut
}

func (p *partitions) isCut(a, b string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut[[2]string{a, b}]
}

type testNode struct {
	id     string
	store  *ledger.Store
	node   *Node
	ledger *ledger.Ledger
	trans  *hraft.InmemTransport
	srv    *grpc.Server
	lis    net.Listener
	dir    string
	closed bool
}

type testCluster struct {
	t     testing.TB
	keys  clusterKeys
	nodes []*testNode
	parts partitions
	opts  func(*Config)
	base  string
}

func (c *testCluster) tempDir() string {
	c.t.Helper()
	d, err := os.MkdirTemp(c.base, "")
	if err != nil {
		c.t.Fatal(err)
	}
	return d
}

// fastConfig keeps in-process elections short.
func fastConfig(c *Config) {
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.ApplyTimeout = 5 * time.Second
	c.CheckInterval = -1
}

// newCluster starts n nodes on in-memory Raft transports with a real
// gRPC server each on 127.0.0.1; node 0 bootstraps, the others join
// through node 0's API address.
func newCluster(t testing.TB, n int, opts func(*Config)) *testCluster {
	t.Helper()
	// The base directory is created before the cleanup that stops the
	// nodes is registered, so it is removed after they stop.
	c := &testCluster{t: t, keys: newClusterKeys(t), opts: opts, base: t.TempDir()}
	t.Cleanup(c.close)
	for i := 0; i < n; i++ {
		c.add(fmt.Sprintf("n%d", i+1))
	}
	if err := c.nodes[0].node.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	c.waitLeader()
	for _, tn := range c.nodes[1:] {
		c.join(tn, c.nodes[0])
	}
	return c
}

// add starts one node that is connected to every other but not yet a
// member.
func (c *testCluster) add(id string) *testNode { return c.addAt(id, id) }

// addAt is add with a Raft address other than the id.
func (c *testCluster) addAt(id, addr string) *testNode {
	c.t.Helper()
	tn := &testNode{id: id, dir: c.tempDir()}
	var err error
	if tn.store, err = ledger.OpenStore(c.tempDir(), ledger.StoreOptions{NoSync: true}); err != nil {
		c.t.Fatal(err)
	}
	_, tn.trans = hraft.NewInmemTransport(hraft.ServerAddress(addr))
	for _, o := range c.nodes {
		if o.closed {
			continue
		}
		tn.trans.Connect(o.trans.LocalAddr(), o.trans)
		o.trans.Connect(tn.trans.LocalAddr(), tn.trans)
	}
	if tn.lis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		c.t.Fatal(err)
	}
	cfg := Config{ID: id, Dir: tn.dir, Store: tn.store, Transport: tn.trans, APIAddr: tn.lis.Addr().String(), Logger: testLogger(), RaftLogLevel: os.Getenv("RAFT_TEST_LOG")}
	fastConfig(&cfg)
	if c.opts != nil {
		c.opts(&cfg)
	}
	if tn.node, err = Open(cfg); err != nil {
		c.t.Fatal(err)
	}
	if tn.ledger, err = ledger.New(ledger.Config{
		Store: tn.store, Origin: "test", Signer: c.keys.signer, HMAC: c.keys.hmac,
		Committer: tn.node.Committer(), Logger: testLogger(),
	}); err != nil {
		c.t.Fatal(err)
	}
	self := id
	tn.srv = grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		if from := md.Get(NodeHeader); len(from) > 0 && c.parts.isCut(from[0], self) {
			return nil, status.Error(codes.Unavailable, "partitioned (test)")
		}
		return h(ctx, req)
	}))
	NewService(tn.node, ServiceOptions{Ledger: tn.ledger, JoinKeys: func() (map[string][]byte, error) {
		return map[string][]byte{"test.key": []byte("secret")}, nil
	}}).Register(tn.srv)
	go tn.srv.Serve(tn.lis)
	c.nodes = append(c.nodes, tn)
	return tn
}

func (c *testCluster) join(tn, via *testNode) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	keys, err := tn.node.Join(ctx, via.lis.Addr().String())
	if err != nil {
		c.t.Fatalf("join %s: %v", tn.id, err)
	}
	if string(keys["test.key"]) != "secret" {
		c.t.Fatalf("join %s: keys %v", tn.id, keys)
	}
}

// stop shuts one node down, in the documented order.
func (c *testCluster) stop(tn *testNode) {
	if tn.closed {
		return
	}
	tn.closed = true
	tn.srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tn.ledger.Close(ctx); err != nil {
		c.t.Errorf("close ledger %s: %v", tn.id, err)
	}
	if err := tn.node.Close(); err != nil {
		c.t.Errorf("close node %s: %v", tn.id, err)
	}
	tn.trans.Close()
	if err := tn.store.Close(); err != nil {
		c.t.Errorf("close store %s: %v", tn.id, err)
	}
}

// close stops the leader first, while the others can still take over,
// so that its leadership transfer does not wait on a stopped peer.
func (c *testCluster) close() {
	for {
		live := c.live()
		if len(live) == 0 {
			return
		}
		next := live[0]
		for _, tn := range live {
			if tn.node.IsLeader() {
				next = tn
			}
		}
		c.stop(next)
	}
}

func (c *testCluster) live() []*testNode {
	var out []*testNode
	for _, tn := range c.nodes {
		if !tn.closed {
			out = append(out, tn)
		}
	}
	return out
}

// waitLeader waits until one live node leads and returns it.
func (c *testCluster) waitLeader() *testNode {
	c.t.Helper()
	var found *testNode
	c.eventually(10*time.Second, "a leader", func() bool {
		for _, tn := range c.live() {
			if tn.node.IsLeader() {
				found = tn
				return true
			}
		}
		return false
	})
	return found
}

func (c *testCluster) followers() []*testNode {
	var out []*testNode
	for _, tn := range c.live() {
		if !tn.node.IsLeader() {
			out = append(out, tn)
		}
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func (c *testCluster) eventually(d time.Duration, what string, cond func() bool) {
	c.t.Helper()
	eventually(c.t, d, what, cond)
}

func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// converge waits until every live node holds the same tree size and
// returns it; then it checks that all roots agree at that size.
func (c *testCluster) converge(want uint64) {
	c.t.Helper()
	c.eventually(15*time.Second, fmt.Sprintf("every node at size %d", want), func() bool {
		for _, tn := range c.live() {
			if tn.store.State().Size != want {
				return false
			}
		}
		return true
	})
	root := c.live()[0].store.State().Root
	for _, tn := range c.live() {
		if tn.store.State().Root != root {
			c.t.Fatalf("node %s root %s differs from %s at size %d", tn.id, tn.store.State().Root, root, want)
		}
	}
}

// sameRootsAtEverySize compares RootAt(s) of every live node for every
// size up to the common size.
func (c *testCluster) sameRootsAtEverySize() {
	c.t.Helper()
	live := c.live()
	size := live[0].store.State().Size
	for s := uint64(1); s <= size; s++ {
		want, err := live[0].store.RootAt(s)
		if err != nil {
			c.t.Fatal(err)
		}
		for _, tn := range live[1:] {
			got, err := tn.store.RootAt(s)
			if err != nil || got != want {
				c.t.Fatalf("size %d: node %s root %s (%v), node %s %s", s, tn.id, got, err, live[0].id, want)
			}
		}
	}
}

func event(id string) ledger.Event {
	return ledger.Event{
		ID:     id,
		Actor:  ledger.Actor{ID: "alice", Type: "user"},
		Action: ledger.Action{Type: "read", Resource: "doc", ResourceID: id, Result: "success"},
	}
}

func events(prefix string, n int) []ledger.Event {
	out := make([]ledger.Event, n)
	for i := range out {
		out[i] = event(fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// cut and heal partition node a from node b in both directions, on the
// Raft transport and on the gRPC calls between them.
func (c *testCluster) cut(a, b *testNode) {
	a.trans.Disconnect(b.trans.LocalAddr())
	b.trans.Disconnect(a.trans.LocalAddr())
	c.parts.set(a.id, b.id, true)
}

func (c *testCluster) heal(a, b *testNode) {
	a.trans.Connect(b.trans.LocalAddr(), b.trans)
	b.trans.Connect(a.trans.LocalAddr(), a.trans)
	c.parts.set(a.id, b.id, false)
}
