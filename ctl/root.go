package ctl

import (
	"errors"

	"github.com/spf13/cobra"
)

// newRootCmd builds the ledgerctl command tree. Each command is added by
// one line; keep it that way.
func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "ledgerctl",
		Short: "Client of ledgerd, the verifiable audit ledger",
		Long: `ledgerctl appends audit events to ledgerd, reads them back, fetches signed
checkpoints and Merkle proofs, and verifies proofs and whole logs.

Exit status: 0 success (for verify commands: valid), 1 verification failed,
2 bad flags or input, RPC or I/O error. Errors are one line on stderr.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("missing command (see ledgerctl --help)")
		},
	}
	root.SetIn(g.stdin)
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	g.bindFlags(root)

	root.AddCommand(newAppendCmd(g))
	root.AddCommand(newGetCmd(g))
	root.AddCommand(newCheckpointCmd(g))
	root.AddCommand(newPubkeyCmd(g))
	root.AddCommand(newProveCmd(g))
	root.AddCommand(newVerifyCmd(g))
	root.AddCommand(newVerifyLogCmd(g))
	root.AddCommand(newTailCmd(g))
	root.AddCommand(newQueryCmd(g))
	root.AddCommand(newSinksCmd(g))
	root.AddCommand(newClusterCmd(g))
	root.AddCommand(newTokenCmd(g))
	root.AddCommand(newWhoamiCmd(g))
	root.AddCommand(newKeysCmd(g))
	root.AddCommand(newEraseCmd(g))
	root.AddCommand(newBenchCmd(g))
	return root
}

// group is a command that only holds subcommands.
func group(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("missing subcommand (see ledgerctl " + cmd.Name() + " --help)")
		},
	}
}
