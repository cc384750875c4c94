package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SSHServer is a running OpenSSH sshd that admits the current OS user with
// a generated ed25519 key.
type SSHServer struct {
	Endpoint
	// User is the OS user the client logs in as.
	User string
	// KeyFile is the client's private key; KnownHosts pins the host key.
	KeyFile    string
	KnownHosts string
	Dir        string
	ssh        string
}

var sshOnce once[*SSHServer]

// SSHD returns the package's sshd, starting it on first use.
func SSHD(t testing.TB) *SSHServer {
	t.Helper()
	return sshOnce.get(t, startSSHD)
}

// Run executes a command on the server with the OpenSSH client and returns
// its combined output.
func (s *SSHServer) Run(command string) (string, error) {
	out, err := exec.Command(s.ssh, "-F", "/dev/null", "-i", s.KeyFile, "-p", strconv.Itoa(s.Port),
		"-o", "UserKnownHostsFile="+s.KnownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		s.User+"@"+s.Host, command).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ssh %q: %w: %s", command, err, out)
	}
	return string(out), nil
}

func startSSHD() (*SSHServer, error) {
	sshd, err := lookBin("sshd", "openssh-server", "/usr/sbin")
	if err != nil {
		return nil, err
	}
	keygen, err := lookBin("ssh-keygen", "openssh-client")
	if err != nil {
		return nil, err
	}
	sshBin, err := lookBin("ssh", "openssh-client")
	if err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// sshd's privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, fmt.Errorf("testenv: sshd: %w", err)
		}
	}
	dir, err := tempDir("sshd", nil)
	if err != nil {
		return nil, err
	}
	hostKey, clientKey := filepath.Join(dir, "host_ed25519"), filepath.Join(dir, "client_ed25519")
	for _, k := range []string{hostKey, clientKey} {
		if err := run(nil, keygen, "-q", "-t", "ed25519", "-N", "", "-C", "gatehouse-testenv", "-f", k); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("testenv: ssh-keygen: %w", err)
		}
	}
	clientPub, err := os.ReadFile(clientKey + ".pub")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), clientPub, 0o600); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	hostPub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return nil, err
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	fields := strings.Fields(string(hostPub))
	if err := os.WriteFile(knownHosts, []byte(fmt.Sprintf("[127.0.0.1]:%d %s %s\n", port, fields[0], fields[1])), 0o600); err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowTcpForwarding yes
Subsystem sftp internal-sftp
LogLevel VERBOSE
`, port, hostKey, filepath.Join(dir, "sshd.pid"), filepath.Join(dir, "authorized_keys"))
	configPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "sshd.log")
	cmd, err := command(nil, logPath, sshd, "-D", "-e", "-f", configPath)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	stop, err := serve("sshd", cmd, dir, logPath, syscall.SIGTERM, 10*time.Second, 30*time.Second, func() error { return banner(addr) })
	if err != nil {
		return nil, err
	}
	onStop(stop)
	return &SSHServer{Endpoint: loopback(port), User: u.Username, KeyFile: clientKey, KnownHosts: knownHosts, Dir: dir, ssh: sshBin}, nil
}

// banner succeeds once the server greets with an SSH-2.0 identification.
func banner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("unexpected banner %q", line)
	}
	return nil
}
