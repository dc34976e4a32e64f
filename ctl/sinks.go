package ctl

import (
	"fmt"

	"github.com/spf13/cobra"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

// sinkJSON is one sink in "sinks status".
type sinkJSON struct {
	Name         string  `json:"name"`
	Type         string  `json:"type"`
	Running      bool    `json:"running"`
	Cursor       uint64  `json:"cursor"`
	TreeSize     uint64  `json:"treeSize"`
	LagEvents    uint64  `json:"lagEvents"`
	LagSeconds   float64 `json:"lagSeconds"`
	Delivered    uint64  `json:"delivered"`
	Failed       uint64  `json:"failed"`
	DeadLettered uint64  `json:"deadLettered"`
	Alerting     bool    `json:"alerting"`
	LastError    string  `json:"lastError,omitempty"`
	LastErrorAt  string  `json:"lastErrorAt,omitempty"`
	FailingSince string  `json:"failingSince,omitempty"`
	LastDelivery string  `json:"lastDelivery,omitempty"`
}

func newSinksCmd(g *globals) *cobra.Command {
	cmd := group("sinks", "Inspect the change feed's SIEM sinks")
	var check bool
	status := &cobra.Command{
		Use:   "status [--check]",
		Short: "Print each sink's cursor, lag and last error",
		Long: `Print one JSON object: {"healthy":bool,"sinks":[...]}, each sink with its
cursor (the next index to deliver; everything below it was acknowledged), the
lag in events and in seconds (age of the oldest undelivered entry), counts since
the server started, and its last error. "running" is true on the node that runs
the sink (the leader); other nodes report the replicated cursor. healthy means
sinks are configured and none has failed for longer than its alertAfter.
With --check, exit 1 when not healthy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cc, err := g.conn()
			if err != nil {
				return err
			}
			resp, err := pb.NewFeedClient(cc).SinksStatus(cmd.Context(), &pb.SinksStatusRequest{})
			if err != nil {
				return err
			}
			out := struct {
				Healthy bool       `json:"healthy"`
				Sinks   []sinkJSON `json:"sinks"`
			}{Healthy: resp.Healthy, Sinks: []sinkJSON{}}
			for _, s := range resp.Sinks {
				out.Sinks = append(out.Sinks, sinkJSON{
					Name: s.Name, Type: s.Type, Running: s.Running, Cursor: s.Cursor, TreeSize: s.TreeSize,
					LagEvents: s.LagEvents, LagSeconds: s.LagSeconds, Delivered: s.Delivered, Failed: s.Failed,
					DeadLettered: s.DeadLettered, Alerting: s.Alerting, LastError: s.LastError,
					LastErrorAt: s.LastErrorAt, FailingSince: s.FailingSince, LastDelivery: s.LastDelivery,
				})
			}
			if err := g.printJSON(out); err != nil {
				return err
			}
			if check && !resp.Healthy {
				return fmt.Errorf("%w: sinks are not healthy", errVerify)
			}
			return nil
		},
	}
	status.Flags().BoolVar(&check, "check", false, "exit 1 unless sinks are configured and healthy")
	cmd.AddCommand(status)
	return cmd
}
