package ctl

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

func newCheckpointCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint",
		Short: "Print the latest signed checkpoint, exactly as served",
		Long: `Print the latest checkpoint: a C2SP tlog-checkpoint signed note
(origin, tree size, base64 root hash, blank line, signature lines), byte for
byte as the server signed it. Save it to a file to verify proofs against later.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := getCheckpoint(cmd, g)
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(resp.GetCheckpoint().GetNote())
			return err
		},
	}
}

func newPubkeyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pubkey",
		Short: "Print the checkpoint verifier key (name+hash+base64key)",
		Long: `Print the note verifier key the server signs checkpoints with, as
name+hexkeyhash+base64(0x01||pubkey). This is the server's own claim: pin the
key you got out of band (e.g. from the operator, or DATA_DIR/checkpoint.pub) and
pass that to --key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := getCheckpoint(cmd, g)
			if err != nil {
				return err
			}
			if resp.VerifierKey == "" {
				return errors.New("server sent no verifier key")
			}
			_, err = fmt.Fprintln(g.stdout, resp.VerifierKey)
			return err
		},
	}
}

func getCheckpoint(cmd *cobra.Command, g *globals) (*pb.GetCheckpointResponse, error) {
	c, err := g.client()
	if err != nil {
		return nil, err
	}
	resp, err := c.GetCheckpoint(cmd.Context(), &pb.GetCheckpointRequest{})
	if err != nil {
		return nil, err
	}
	if len(resp.GetCheckpoint().GetNote()) == 0 {
		return nil, errors.New("server sent no checkpoint")
	}
	return resp, nil
}
