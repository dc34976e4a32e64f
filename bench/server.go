package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/node"
)

// Server modes in the report.
const (
	ModeSubprocess = "subprocess" // embedded ledgerd processes started by the run
	ModeInProcess  = "in-process" // embedded node in the benchmark's own process
	ModeRemote     = "remote"     // a server the run did not start
)

// target is what the run talks to and, for embedded servers, what it
// started (and stops).
type target struct {
	mode  string
	addrs []string
	vkey  string // verifier key of the embedded servers
	// token is the bearer token of the embedded servers' admin (empty
	// when the server has no authentication).
	token string
	dirs  []string // data directories of the embedded servers
	procs []*serverProc
	stop  func(ctx context.Context) error
	// removeDir, when set, is removed after stop.
	removeDir string
}

// serverProc is one ledgerd child process.
type serverProc struct {
	cmd     *exec.Cmd
	logDone chan struct{}
	exited  chan struct{}
	waitErr error
}

// startTarget starts the embedded servers cfg asks for, or points at the
// remote ones.
func startTarget(ctx context.Context, cfg *Config) (*target, error) {
	if cfg.Embedded == 0 {
		return &target{mode: ModeRemote, addrs: cfg.Addrs, stop: func(context.Context) error { return nil }}, nil
	}
	dir := cfg.DataDir
	t := &target{}
	if dir == "" {
		d, err := os.MkdirTemp("", "ledgerd-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		dir = d
		if !cfg.KeepData {
			t.removeDir = d
		}
	}
	var err error
	switch {
	case cfg.Embedded == 3:
		err = startCluster(ctx, cfg, dir, t)
	case cfg.Ledgerd != "":
		t.mode = ModeSubprocess
		err = startProcess(ctx, cfg, filepath.Join(dir, "node1"), t)
	default:
		t.mode = ModeInProcess
		err = startInProcess(ctx, cfg, filepath.Join(dir, "node1"), t)
	}
	if err != nil {
		if t.stop != nil {
			t.stop(context.Background())
		}
		if t.removeDir != "" {
			os.RemoveAll(t.removeDir)
		}
		return nil, err
	}
	return t, nil
}

// close stops the embedded servers and removes a temporary data dir.
func (t *target) close(ctx context.Context) error {
	err := t.stop(ctx)
	if t.removeDir != "" {
		if rerr := os.RemoveAll(t.removeDir); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

func startInProcess(ctx context.Context, cfg *Config, dir string, t *target) error {
	nc := node.Defaults()
	nc.DataDir = dir
	nc.GRPCAddr = "127.0.0.1:0"
	nc.HTTPAddr = "127.0.0.1:0"
	nc.Origin = "bench.local/ledgerd"
	nc.UnsafeNoSync = cfg.UnsafeNoSync
	nc.LogLevel = "warn"
	nc.Security.Banner = io.Discard // the admin token is read from its file
	n, err := node.Start(ctx, nc, cfg.Logger.With("server", "node1"))
	if err != nil {
		return fmt.Errorf("bench: start embedded node: %w", err)
	}
	t.addrs = []string{n.GRPCAddr()}
	t.vkey = n.Keys().VerifierKey
	// A node with authentication writes its initial admin token on first
	// start, before Start returns.
	if b, err := os.ReadFile(filepath.Join(dir, adminTokenFile)); err == nil {
		t.token = strings.TrimSpace(string(b))
	}
	t.dirs = []string{dir}
	t.stop = n.Close
	return nil
}

// adminTokenFile is where a node with authentication writes its initial
// admin token (node.AdminTokenFile).
const adminTokenFile = "admin.token"

// bearer sends the admin token with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// FindLedgerd looks for the ledgerd binary embedded servers run as: next
// to the running executable (bin/ledgerctl beside bin/ledgerd), then on
// $PATH. It returns "" when there is none.
func FindLedgerd() string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "ledgerd")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath("ledgerd"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	return ""
}

// startProcess runs one ledgerd and waits until it serves.
func startProcess(ctx context.Context, cfg *Config, dir string, t *target, extra ...string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	args := []string{
		"--data-dir", dir,
		"--grpc-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0",
		"--origin", "bench.local/ledgerd",
		"--log-format", "json",
		"--log-level", "info",
	}
	if cfg.UnsafeNoSync {
		args = append(args, "--unsafe-nosync")
	}
	args = append(args, extra...)
	if t.token == "" {
		// The admin token the processes accept (LEDGER_ADMIN_TOKEN): chosen
		// here, so the run need not wait for a generated one.
		var b [32]byte
		rand.Read(b[:])
		t.token = hex.EncodeToString(b[:])
	}
	env := append(os.Environ(), "LEDGER_ADMIN_TOKEN="+t.token)
	p, addr, err := spawn(ctx, cfg.Ledgerd, args, env, filepath.Join(dir, "ledgerd.log"), cfg.Logger)
	if err != nil {
		return err
	}
	t.procs = append(t.procs, p)
	t.stop = t.terminateAll
	t.addrs = append(t.addrs, addr)
	t.dirs = append(t.dirs, dir)
	if t.vkey == "" {
		// The first node generated the keys (the others of a cluster
		// receive them when they join).
		vk, err := os.ReadFile(filepath.Join(dir, node.VerifierKeyFile))
		if err != nil {
			return fmt.Errorf("bench: verifier key of the embedded server: %w", err)
		}
		t.vkey = strings.TrimSpace(string(vk))
	}
	return nil
}

// spawn starts bin with args, copies its stderr (JSON log lines) to
// logFile and returns once it logs the gRPC address it serves on.
func spawn(ctx context.Context, bin string, args, env []string, logFile string, log *slog.Logger) (*serverProc, string, error) {
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, "", fmt.Errorf("bench: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = lf
	stderr, err := cmd.StderrPipe()
	if err != nil {
		lf.Close()
		return nil, "", fmt.Errorf("bench: %w", err)
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, "", fmt.Errorf("bench: start %s: %w", bin, err)
	}
	p := &serverProc{cmd: cmd, logDone: make(chan struct{}), exited: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		defer close(p.logDone)
		defer lf.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			lf.Write(line)
			lf.Write([]byte{'\n'})
			var rec struct {
				Msg, Level, Addr string
			}
			if json.Unmarshal(line, &rec) != nil {
				continue
			}
			if rec.Msg == "serving gRPC" && rec.Addr != "" {
				select {
				case addrc <- rec.Addr:
				default:
				}
			}
			if rec.Level == "ERROR" || rec.Level == "WARN" {
				log.Warn("ledgerd: "+rec.Msg, "pid", cmd.Process.Pid, "log", logFile)
			}
		}
		io.Copy(lf, stderr)
	}()
	go func() {
		<-p.logDone // the pipe must be drained before Wait closes it
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	wait := time.NewTimer(30 * time.Second)
	defer wait.Stop()
	select {
	case addr := <-addrc:
		return p, addr, nil
	case <-p.exited:
		return nil, "", fmt.Errorf("bench: %s exited before serving (%v); its log ends:\n%s", bin, p.waitErr, logTail(logFile, 5))
	case <-wait.C:
		p.terminate(context.Background())
		return nil, "", fmt.Errorf("bench: %s did not serve within 30s; see %s", bin, logFile)
	case <-ctx.Done():
		p.terminate(context.Background())
		return nil, "", ctx.Err()
	}
}

// logTail returns the last n lines of a log file.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// terminateAll stops every server process at once, as an operator
// stopping a cluster would (stopping followers first leaves the last node
// without a quorum for what it commits on the way out).
func (t *target) terminateAll(ctx context.Context) error {
	errs := make([]error, len(t.procs))
	var wg sync.WaitGroup
	for i, p := range t.procs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = p.terminate(ctx) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// terminate asks the process to stop (SIGTERM), then kills it when ctx
// ends first.
func (p *serverProc) terminate(ctx context.Context) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-ctx.Done():
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("bench: ledgerd pid %d killed after %v", p.cmd.Process.Pid, ctx.Err())
	}
	var ee *exec.ExitError
	if p.waitErr != nil && !errors.As(p.waitErr, &ee) {
		return p.waitErr
	}
	if !p.cmd.ProcessState.Success() {
		return fmt.Errorf("bench: ledgerd pid %d: %s", p.cmd.Process.Pid, p.cmd.ProcessState)
	}
	return nil
}

// usage is the CPU time and peak RSS of the embedded server processes
// (the sum of CPU, the largest peak), read from /proc while they run.
func (t *target) usage() (cpu time.Duration, peakRSS uint64, ok bool) {
	if t.mode != ModeSubprocess || len(t.procs) == 0 {
		return 0, 0, false
	}
	for _, p := range t.procs {
		st, err := readProc(p.cmd.Process.Pid)
		if err != nil {
			return 0, 0, false
		}
		cpu += st.cpu
		peakRSS = max(peakRSS, st.peakRSS)
	}
	return cpu, peakRSS, true
}

// finalUsage is the exact CPU time and peak RSS of the server processes
// over their whole life, from wait4's rusage, after they exited.
func (t *target) finalUsage() (cpu time.Duration, peakRSS uint64, ok bool) {
	if t.mode != ModeSubprocess || len(t.procs) == 0 {
		return 0, 0, false
	}
	for _, p := range t.procs {
		ps := p.cmd.ProcessState
		if ps == nil {
			return 0, 0, false
		}
		cpu += ps.UserTime() + ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			peakRSS = max(peakRSS, uint64(ru.Maxrss)*1024)
		}
	}
	return cpu, peakRSS, true
}

// diskUsage is the size of the files in the data directories (what the
// data takes) and the space allocated to them (Pebble preallocates and
// recycles its write-ahead logs: tens of MiB that only matter in small
// runs).
func diskUsage(dirs []string) (size, allocated uint64, err error) {
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() {
				return nil
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			size += uint64(fi.Size())
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				allocated += uint64(st.Blocks) * 512
			}
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
	}
	return size, allocated, nil
}

// startCluster starts three ledgerd processes on loopback: the first
// bootstraps the cluster, the others join it through its API. It needs
// the ledgerd binary: three nodes in one process would share one CPU and
// RSS figure and one Go runtime, which a cluster never does.
func startCluster(ctx context.Context, cfg *Config, dir string, t *target) error {
	if cfg.Ledgerd == "" {
		return fmt.Errorf("%w: --embedded-cluster runs ledgerd processes; give the ledgerd binary", ErrUnsupported)
	}
	t.mode = ModeSubprocess
	for i := 1; i <= cfg.Embedded; i++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		id := fmt.Sprintf("node%d", i)
		extra := []string{"--node-id", id, "--raft-addr", port}
		if i == 1 {
			extra = append(extra, "--bootstrap")
		} else {
			extra = append(extra, "--join", t.addrs[0])
		}
		if err := startProcess(ctx, cfg, filepath.Join(dir, id), t, extra...); err != nil {
			return err
		}
		if i == 1 {
			// A join sent before the first node has won its first
			// election fails after the join's deadline (seen with
			// ledgerd at 3856f6c); wait for a leader.
			if err := waitLeader(ctx, t.addrs[0], t.token); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitLeader polls a node until a linearizable checkpoint read (a leader
// barrier) succeeds.
func waitLeader(ctx context.Context, addr, token string) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer cc.Close()
	api := pb.NewLedgerClient(cc)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, err := api.GetCheckpoint(ctx, &pb.GetCheckpointRequest{Linearizable: true})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: the first node of the cluster elected no leader: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// freePort returns a loopback address nobody listens on (for a moment:
// good enough on loopback for a benchmark).
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
