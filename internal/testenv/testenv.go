// Package testenv starts real servers from Debian packages (PostgreSQL,
// MariaDB, Redis, OpenSSH sshd) on free loopback ports in temporary
// directories for integration tests. Each server starts at most once per
// test package, on first use, and stops when the package's tests end:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
//
//	func TestX(t *testing.T) { pg := testenv.Postgres(t); … pg.DSN("db") … }
//
// A missing server binary fails the test with the Debian package to
// install; it is never a silent skip.
package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	mainCalled bool
	mu         sync.Mutex
	stoppers   []func()
)

// Main runs the package's tests and then stops every server they started.
// Call it from TestMain.
func Main(m *testing.M) int {
	mainCalled = true
	code := m.Run()
	StopAll()
	return code
}

// StopAll stops every started server, newest first.
func StopAll() {
	mu.Lock()
	defer mu.Unlock()
	for i := len(stoppers) - 1; i >= 0; i-- {
		stoppers[i]()
	}
	stoppers = nil
}

func onStop(f func()) {
	mu.Lock()
	stoppers = append(stoppers, f)
	mu.Unlock()
}

// once starts a server the first time it is asked for and remembers the
// outcome, so a server that failed to start fails every test that needs it
// with the same reason instead of being retried per test.
type once[T any] struct {
	o   sync.Once
	v   T
	err error
}

func (o *once[T]) get(t testing.TB, start func() (T, error)) T {
	t.Helper()
	if !mainCalled {
		t.Fatal("testenv: this package's TestMain must call os.Exit(testenv.Main(m)) so servers are stopped after its tests")
	}
	o.o.Do(func() { o.v, o.err = start() })
	if o.err != nil {
		t.Fatal(o.err)
	}
	return o.v
}

// MissingBinaryError names the binary and the Debian package providing it.
type MissingBinaryError struct {
	Binary, Package string
}

func (e *MissingBinaryError) Error() string {
	return fmt.Sprintf("testenv: %s not found: install the Debian package %s (scripts/install-deps does it)", e.Binary, e.Package)
}

// lookBin finds a binary on PATH or in extra directories (globs allowed).
func lookBin(name, pkg string, dirs ...string) (string, error) {
	for _, pattern := range dirs {
		matches, _ := filepath.Glob(filepath.Join(pattern, name))
		// Highest version last in lexical order; prefer it.
		for i := len(matches) - 1; i >= 0; i-- {
			if st, err := os.Stat(matches[i]); err == nil && st.Mode()&0o111 != 0 {
				return matches[i], nil
			}
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", &MissingBinaryError{Binary: name, Package: pkg}
}

// Endpoint is where a server listens.
type Endpoint struct {
	Host string
	Port int
}

// Addr is host:port.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

func loopback(port int) Endpoint { return Endpoint{Host: "127.0.0.1", Port: port} }

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// account is the unprivileged user a server runs as when tests run as root
// (PostgreSQL and MariaDB refuse root). nil means "as the current user".
type account struct {
	name     string
	uid, gid uint32
}

func unprivileged(name string) (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("testenv: running as root needs the system user %q (created by its Debian package): %w", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &account{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
}

// tempDir makes a directory the account can own and write.
func tempDir(prefix string, acct *account) (string, error) {
	dir, err := os.MkdirTemp("", "gatehouse-"+prefix+"-")
	if err != nil {
		return "", err
	}
	if acct != nil {
		if err := os.Chown(dir, int(acct.uid), int(acct.gid)); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

// command builds a server command that runs as acct, in its own process
// group, and dies with the test binary even if the binary is killed.
func command(acct *account, logPath, bin string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if acct != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: acct.uid, Gid: acct.gid}
		cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(logPath), "USER="+acct.name)
	}
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		if acct != nil {
			f.Chown(int(acct.uid), int(acct.gid))
		}
		cmd.Stdout, cmd.Stderr = f, f
	}
	return cmd, nil
}

// run executes a set-up command to completion, returning its output in the
// error when it fails.
func run(acct *account, bin string, args ...string) error {
	cmd, err := command(acct, "", bin, args...)
	if err != nil {
		return err
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %w\n%s", filepath.Base(bin), args, err, out)
	}
	return nil
}

// process is a running server.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProcess(cmd *exec.Cmd) (*process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// exited reports a process that has already ended.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("exited: %v", p.err)
	default:
		return nil
	}
}

// stop asks the server to shut down with sig, and kills its whole process
// group if it has not ended within grace.
func (p *process) stop(sig syscall.Signal, grace time.Duration) {
	pgid := p.cmd.Process.Pid
	syscall.Kill(pgid, sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	syscall.Kill(-pgid, syscall.SIGKILL) // any straggler children
}

// serve starts cmd, a server whose data lives in dir, and waits until
// ready succeeds. stop shuts it down with sig (killing the group after
// grace) and removes dir; on failure serve has already done both.
func serve(what string, cmd *exec.Cmd, dir, logPath string, sig syscall.Signal, grace, timeout time.Duration, ready func() error) (stop func(), err error) {
	p, err := startProcess(cmd)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testenv: start %s: %w", what, err)
	}
	stop = func() {
		p.stop(sig, grace)
		os.RemoveAll(dir)
	}
	if err := waitReady(what, p, logPath, timeout, ready); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// waitReady polls ready until it succeeds, the process dies, or timeout.
func waitReady(what string, p *process, logPath string, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if err := p.exited(); err != nil {
			return fmt.Errorf("testenv: %s %w; log:\n%s", what, err, tail(logPath))
		}
		if last = ready(); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("testenv: %s not ready after %s: %v; log:\n%s", what, timeout, last, tail(logPath))
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// dialCheck succeeds once something accepts TCP connections at addr.
func dialCheck(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

var errNotReady = errors.New("not ready")
