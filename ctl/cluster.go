package ctl

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/metadata"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

// clusterTokenHeader is the metadata key of the cluster token
// (raft.TokenHeader; a test keeps them equal).
const clusterTokenHeader = "ledgerd-cluster-token"

// clusterNodeJSON is one node in "cluster status".
type clusterNodeJSON struct {
	ID           string `json:"id"`
	RaftAddr     string `json:"raftAddr"`
	APIAddr      string `json:"apiAddr"`
	State        string `json:"state"`
	Voter        bool   `json:"voter"`
	Leader       string `json:"leader"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commitIndex"`
	AppliedIndex uint64 `json:"appliedIndex"`
	LastLogIndex uint64 `json:"lastLogIndex"`
	TreeSize     uint64 `json:"treeSize"`
	Root         []byte `json:"root,omitempty"`
	Divergence   string `json:"divergence,omitempty"`
	Error        string `json:"error,omitempty"`
}

func newClusterCmd(g *globals) *cobra.Command {
	cmd := group("cluster", "Inspect and change the membership of a ledgerd cluster")
	var check bool
	status := &cobra.Command{
		Use:   "status [--check]",
		Short: "Print every node's role, Raft indexes, tree size and root",
		Long: `Ask the node at --addr for the status of every cluster member (it asks
the others) and print one JSON object: {"leader":id,"healthy":bool,
"nodes":[...],"divergence":[...]}. Each node has its id, Raft and API
addresses, state (leader, follower, candidate; unreachable with an error when
it did not answer), term, commit and applied Raft index, tree size and root.
divergence lists nodes holding different roots at the same tree size; healthy
means a leader is known, every node answered and nothing diverged.
With --check, exit 1 when not healthy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cc, err := g.conn()
			if err != nil {
				return err
			}
			resp, err := pb.NewClusterClient(cc).Status(cmd.Context(), &pb.ClusterStatusRequest{})
			if err != nil {
				return err
			}
			healthy := resp.LeaderId != "" && len(resp.Divergence) == 0
			out := struct {
				Leader     string            `json:"leader"`
				Healthy    bool              `json:"healthy"`
				Nodes      []clusterNodeJSON `json:"nodes"`
				Divergence []string          `json:"divergence"`
			}{Leader: resp.LeaderId, Nodes: []clusterNodeJSON{}, Divergence: append([]string{}, resp.Divergence...)}
			for _, n := range resp.Nodes {
				if n.State == "unreachable" || n.Error != "" || n.Divergence != "" {
					healthy = false
				}
				out.Nodes = append(out.Nodes, clusterNodeJSON{
					ID: n.NodeId, RaftAddr: n.RaftAddr, APIAddr: n.ApiAddr, State: n.State, Voter: n.Voter,
					Leader: n.LeaderId, Term: n.Term, CommitIndex: n.CommitIndex, AppliedIndex: n.AppliedIndex,
					LastLogIndex: n.LastLogIndex, TreeSize: n.TreeSize, Root: n.RootHash,
					Divergence: n.Divergence, Error: n.Error,
				})
			}
			out.Healthy = healthy
			if err := g.printJSON(out); err != nil {
				return err
			}
			if check && !healthy {
				return fmt.Errorf("%w: cluster is not healthy", errVerify)
			}
			return nil
		},
	}
	status.Flags().BoolVar(&check, "check", false, "exit 1 unless the cluster is healthy")

	var tokenFile string
	remove := &cobra.Command{
		Use:   "remove <node-id>",
		Short: "Remove a node from the cluster",
		Long: `Remove a node from the Raft configuration (any member accepts the call
and passes it to the leader). The last voter cannot be removed. The call is
cluster-internal: give the cluster token (--cluster-token-file or env
LEDGERD_CLUSTER_TOKEN) unless the cluster runs on loopback without one.
Stop the removed node afterwards; to bring it back, wipe its data directory
and start it with --join.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cc, err := g.conn()
			if err != nil {
				return err
			}
			ctx, err := withClusterToken(cmd.Context(), g, tokenFile)
			if err != nil {
				return err
			}
			if _, err := pb.NewClusterClient(cc).Remove(ctx, &pb.ClusterRemoveRequest{NodeId: args[0]}); err != nil {
				return err
			}
			return g.printJSON(map[string]string{"removed": args[0]})
		},
	}
	remove.Flags().StringVar(&tokenFile, "cluster-token-file", "", "file holding the cluster token (env LEDGERD_CLUSTER_TOKEN)")
	cmd.AddCommand(status, remove)
	return cmd
}

func withClusterToken(ctx context.Context, g *globals, file string) (context.Context, error) {
	tok := strings.TrimSpace(g.getenv("LEDGERD_CLUSTER_TOKEN"))
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("cluster token: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		return ctx, nil
	}
	return metadata.AppendToOutgoingContext(ctx, clusterTokenHeader, tok), nil
}
