package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if ledgerd.dir != "" {
			os.RemoveAll(ledgerd.dir)
		}
		os.Exit(code)
	}))
}

// ledgerd is cmd/ledgerd built once for the tests that run real server
// processes.
var ledgerd struct {
	once      sync.Once
	dir, path string
	err       error
}

func ledgerdBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds cmd/ledgerd and runs server processes")
	}
	ledgerd.once.Do(func() {
		if ledgerd.dir, ledgerd.err = os.MkdirTemp("", "bench-ledgerd-"); ledgerd.err != nil {
			return
		}
		ledgerd.path = filepath.Join(ledgerd.dir, "ledgerd")
		out, err := exec.Command("go", "build", "-o", ledgerd.path, "github.com/auditledger/ledgerd/cmd/ledgerd").CombinedOutput()
		if err != nil {
			ledgerd.err = err
			ledgerd.path = string(out)
		}
	})
	if ledgerd.err != nil {
		t.Fatalf("go build cmd/ledgerd: %v\n%s", ledgerd.err, ledgerd.path)
	}
	return ledgerd.path
}
