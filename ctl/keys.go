package ctl

import (
	"github.com/spf13/cobra"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

type keyJSON struct {
	ID        string `json:"id"`
	CreatedAt string `json:"createdAt"`
	WrappedBy string `json:"wrappedBy"`
	Current   bool   `json:"current"`
}

func keyOut(k *pb.EncryptionKeyInfo) keyJSON {
	return keyJSON{ID: k.GetId(), CreatedAt: k.GetCreatedAt(), WrappedBy: k.GetWrappedBy(), Current: k.GetCurrent()}
}

func newKeysCmd(g *globals) *cobra.Command {
	cmd := group("keys", "Rotate and list field encryption keys (role audit_admin)")
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new field key encrypt new events",
		Long: `Create a new field encryption key on every node (through Raft) and make it
the current one: new events, and the data keys of data subjects, are
encrypted under it; older keys keep decrypting. Prints the new key's
{"id","createdAt","wrappedBy","current"}.

The field keys are wrapped by the master key (AUDIT_ENCRYPTION_KEY or
security.encryption.keyFile). To change the master key: give every node the
new key as the master key and the old one in security.encryption.oldKeyFiles,
restart them, run "ledgerctl keys rotate" (which also re-wraps every field key
under the new master key), then drop the old key file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.admin()
			if err != nil {
				return err
			}
			r, err := c.RotateKey(cmd.Context(), &pb.RotateKeyRequest{})
			if err != nil {
				return err
			}
			return g.printJSON(keyOut(r.Key))
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: `Print {"masterKeyId":…,"keys":[…]}, oldest key first`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.admin()
			if err != nil {
				return err
			}
			r, err := c.ListKeys(cmd.Context(), &pb.ListKeysRequest{})
			if err != nil {
				return err
			}
			out := struct {
				MasterKeyID string    `json:"masterKeyId"`
				Keys        []keyJSON `json:"keys"`
			}{MasterKeyID: r.MasterKeyId, Keys: []keyJSON{}}
			for _, k := range r.Keys {
				out.Keys = append(out.Keys, keyOut(k))
			}
			return g.printJSON(out)
		},
	}
	cmd.AddCommand(rotate, list)
	return cmd
}
