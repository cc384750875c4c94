// Package postgres is Gatehouse's PostgreSQL engine: a native wire-protocol
// gateway. Clients connect with any PostgreSQL tool, name a Gatehouse
// connection as the database and present a Gatehouse token as the password;
// the engine logs in to the target with the credential it holds, then
// relays the session, turning every statement into a gate.Command and its
// result into an audit record. Wire encoding lives in package pgwire.
package postgres

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/proto"
)

// Defaults.
const (
	DefaultAddr            = "127.0.0.1:15432"
	DefaultMaxMessageBytes = 128 << 20
	defaultBufferSize      = 16 << 10
	startupTimeout         = 30 * time.Second
	dialTimeout            = 10 * time.Second
)

// Options tune the engine.
type Options struct {
	// MaxMessageBytes caps a client message the gateway must read whole
	// (Query, Parse, Bind …) and any server message it inspects. Larger
	// messages end the session with an ErrorResponse (SQLSTATE 54000).
	MaxMessageBytes int
	// BufferSize is each direction's read buffer.
	BufferSize int
}

func (o *Options) setDefaults() {
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.BufferSize <= 0 {
		o.BufferSize = defaultBufferSize
	}
}

// Engine serves the PostgreSQL protocol.
type Engine struct {
	deps proto.Deps
	opts Options

	mu sync.Mutex
	// sessions by the target backend's process id, which the client sees
	// (as pg_backend_pid() would show it anyway); backends of different
	// targets may share one, so each id holds a list.
	sessions map[uint32][]*session
	// loggingIn holds connections still in the startup phase, so shutdown
	// can close them too.
	loggingIn map[net.Conn]struct{}
	stopping  bool
	wg        sync.WaitGroup
}

// New returns a PostgreSQL engine.
func New(deps proto.Deps, opts Options) *Engine {
	opts.setDefaults()
	return &Engine{deps: deps, opts: opts, sessions: map[uint32][]*session{}, loggingIn: map[net.Conn]struct{}{}}
}

// Name implements proto.Engine.
func (e *Engine) Name() string { return "postgres" }

// Serve implements proto.Engine.
func (e *Engine) Serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				e.closeAll()
				e.wg.Wait()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.handle(ctx, c)
		}()
	}
}

// register gives a session the cancellation key the client will use with
// the target's process id, and remembers it. The target's own key never
// leaves the gateway.
func (e *Engine) register(s *session) {
	var b [4]byte
	rand.Read(b[:])
	s.key = binary.BigEndian.Uint32(b[:])
	e.mu.Lock()
	e.sessions[s.targetPID] = append(e.sessions[s.targetPID], s)
	e.mu.Unlock()
}

func (e *Engine) unregister(s *session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	list := e.sessions[s.targetPID]
	for i, x := range list {
		if x == s {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(e.sessions, s.targetPID)
	} else {
		e.sessions[s.targetPID] = list
	}
}

// lookup finds the session a CancelRequest names, comparing keys in
// constant time.
func (e *Engine) lookup(pid, key uint32) *session {
	e.mu.Lock()
	defer e.mu.Unlock()
	var found *session
	var want [4]byte
	binary.BigEndian.PutUint32(want[:], key)
	for _, s := range e.sessions[pid] {
		var have [4]byte
		binary.BigEndian.PutUint32(have[:], s.key)
		if subtle.ConstantTimeCompare(want[:], have[:]) == 1 {
			found = s
		}
	}
	return found
}

// trackLogin remembers a connection in the startup phase; it reports false
// when the engine is already stopping.
func (e *Engine) trackLogin(c net.Conn, on bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !on {
		delete(e.loggingIn, c)
		return true
	}
	if e.stopping {
		return false
	}
	e.loggingIn[c] = struct{}{}
	return true
}

func (e *Engine) isStopping() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopping
}

func (e *Engine) closeAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopping = true
	for c := range e.loggingIn {
		c.Close()
	}
	for _, list := range e.sessions {
		for _, s := range list {
			s.shutdown()
		}
	}
}
