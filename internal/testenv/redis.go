package testenv

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RedisServer is a running Redis server that requires a password.
type RedisServer struct {
	Endpoint
	Password string
	Dir      string
}

var redisOnce once[*RedisServer]

// Redis returns the package's Redis server, starting it on first use.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	return redisOnce.get(t, startRedis)
}

// Do authenticates and sends one command, returning the first reply line
// (RESP2 simple forms: +OK, -ERR …, :1, $3 followed by the bulk string).
func (s *RedisServer) Do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	send := func(args ...string) (string, error) {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := c.Write([]byte(b.String())); err != nil {
			return "", err
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "$") && line != "$-1" {
			body, err := r.ReadString('\n')
			return strings.TrimRight(body, "\r\n"), err
		}
		return line, nil
	}
	if reply, err := send("AUTH", s.Password); err != nil || reply != "+OK" {
		return reply, fmt.Errorf("redis AUTH: %q %v", reply, err)
	}
	return send(args...)
}

func startRedis() (*RedisServer, error) {
	bin, err := lookBin("redis-server", "redis-server")
	if err != nil {
		return nil, err
	}
	dir, err := tempDir("redis", nil)
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &RedisServer{Endpoint: loopback(port), Password: randomHex(16), Dir: dir}
	logPath := filepath.Join(dir, "redis.log")
	cmd, err := command(nil, logPath, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dir, "--requirepass", s.Password, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--protected-mode", "yes")
	if err != nil {
		return nil, err
	}
	stop, err := serve("redis", cmd, dir, logPath, syscall.SIGTERM, 10*time.Second, 30*time.Second, func() error {
		reply, err := s.Do("PING")
		if err == nil && reply != "+PONG" {
			return fmt.Errorf("PING = %q", reply)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	onStop(stop)
	return s, nil
}
