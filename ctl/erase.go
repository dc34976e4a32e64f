package ctl

import (
	"bufio"
	"errors"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

func newEraseCmd(g *globals) *cobra.Command {
	var subject, reason string
	cmd := &cobra.Command{
		Use:   "erase --subject S --reason R",
		Short: "Erase a data subject by destroying its keys (GDPR, role audit_admin)",
		Long: `Crypto-shred data subject S (by default the actor id of its events): its
per-subject data keys are destroyed on every node (through Raft) and an
erasure event is appended. Afterwards S's personal and sensitive fields read
"[erased]"; no leaf changes, so every proof and verify-log still pass. The
reason is required and recorded in the erasure event: put no personal data
in it. The subject itself is neither logged nor stored. --subject - reads the
subject from the first line of stdin (keeps it out of shell history).

Prints {"keysDestroyed":N,"event":{"index":…,"id":…,"leafHash":…}}. Erasing
a subject twice destroys nothing the second time but still records it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if subject == "-" {
				line, err := bufio.NewReader(g.stdin).ReadString('\n')
				if err != nil && line == "" {
					return errors.New("--subject -: no subject on stdin")
				}
				subject = strings.TrimRight(line, "\r\n")
			}
			if subject == "" {
				return errors.New("--subject is required")
			}
			if strings.TrimSpace(reason) == "" {
				return errors.New("--reason is required")
			}
			c, err := g.admin()
			if err != nil {
				return err
			}
			r, err := c.Erase(cmd.Context(), &pb.EraseRequest{Subject: subject, Reason: reason})
			if err != nil {
				return err
			}
			ev := r.GetEvent()
			return g.printJSON(map[string]any{
				"keysDestroyed": r.KeysDestroyed,
				"event":         map[string]any{"index": ev.GetIndex(), "id": ev.GetId(), "leafHash": ev.GetLeafHash()},
			})
		},
	}
	cmd.Flags().StringVar(&subject, "subject", "", "the data subject (\"-\": read it from stdin)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the erasure event)")
	return cmd
}
