package ctl

import (
	"github.com/spf13/cobra"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

// tokenJSON is a token's description in token output (never the secret,
// except "token" on creation).
type tokenJSON struct {
	Token     string `json:"token,omitempty"`
	ID        string `json:"id"`
	Name      string `json:"name,omitempty"`
	Role      string `json:"role"`
	CreatedAt string `json:"createdAt"`
	CreatedBy string `json:"createdBy,omitempty"`
	ExpiresAt string `json:"expiresAt,omitempty"`
	RevokedAt string `json:"revokedAt,omitempty"`
	RevokedBy string `json:"revokedBy,omitempty"`
}

func tokenOut(i *pb.TokenInfo) tokenJSON {
	return tokenJSON{ID: i.GetId(), Name: i.GetName(), Role: i.GetRole(), CreatedAt: i.GetCreatedAt(), CreatedBy: i.GetCreatedBy(),
		ExpiresAt: i.GetExpiresAt(), RevokedAt: i.GetRevokedAt(), RevokedBy: i.GetRevokedBy()}
}

func (g *globals) admin() (pb.AdminClient, error) {
	cc, err := g.conn()
	if err != nil {
		return nil, err
	}
	return pb.NewAdminClient(cc), nil
}

func newTokenCmd(g *globals) *cobra.Command {
	cmd := group("token", "Create, list and revoke API tokens (role audit_admin)")
	var role, name, expires string
	create := &cobra.Command{
		Use:   "create --role ROLE [--name N] [--expires 90d]",
		Short: "Create an API token and print it once",
		Long: `Create a bearer token with one role and print
{"token":"ldg_…","id":…,"role":…,…}. The token is shown this once: the server
keeps only its hash. Roles: audit_viewer (read, query), audit_analyst (+
analytics), audit_admin (everything), compliance_officer (read, analyze,
export, report, sensitive fields), ingest (append only), auditor (checkpoints
and proofs only). --expires takes days ("90d") or a duration ("12h").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.admin()
			if err != nil {
				return err
			}
			r, err := c.CreateToken(cmd.Context(), &pb.CreateTokenRequest{Role: role, Name: name, ExpiresIn: expires})
			if err != nil {
				return err
			}
			out := tokenOut(r.Info)
			out.Token = r.Token
			return g.printJSON(out)
		},
	}
	create.Flags().StringVar(&role, "role", "", "the token's role (required)")
	create.Flags().StringVar(&name, "name", "", "a name to recognise the token by")
	create.Flags().StringVar(&expires, "expires", "", "lifetime: days (90d) or a duration (12h); default none")
	create.MarkFlagRequired("role")

	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens, one JSON line each (revoked and expired included)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.admin()
			if err != nil {
				return err
			}
			r, err := c.ListTokens(cmd.Context(), &pb.ListTokensRequest{})
			if err != nil {
				return err
			}
			for _, i := range r.Tokens {
				if err := g.printJSON(tokenOut(i)); err != nil {
					return err
				}
			}
			return nil
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke <id>",
		Short: "Revoke a token on every node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.admin()
			if err != nil {
				return err
			}
			r, err := c.RevokeToken(cmd.Context(), &pb.RevokeTokenRequest{Id: args[0]})
			if err != nil {
				return err
			}
			return g.printJSON(tokenOut(r.Info))
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func newWhoamiCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Print the principal, roles and permissions the server sees",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.admin()
			if err != nil {
				return err
			}
			r, err := c.WhoAmI(cmd.Context(), &pb.WhoAmIRequest{})
			if err != nil {
				return err
			}
			return g.printJSON(map[string]any{"id": r.Id, "name": r.Name, "kind": r.Kind, "roles": nonNilS(r.Roles), "permissions": nonNilS(r.Permissions)})
		},
	}
}

func nonNilS(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
