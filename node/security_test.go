package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/auditledger/ledgerd/auth"
)

// adminToken reads the initial admin token a node wrote in dir.
func adminToken(t testing.TB, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// withAdminToken sends the node's admin token on every call.
func withAdminToken(t testing.TB, dir string) grpc.DialOption {
	return grpc.WithPerRPCCredentials(auth.BearerCredentials(adminToken(t, dir), false))
}
