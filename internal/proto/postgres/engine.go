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

	mu       sync.Mutex
	sessions map[uint32]*session // by the process id the gateway gave the client
	wg       sync.WaitGroup
}

// New returns a PostgreSQL engine.
func New(deps proto.Deps, opts Options) *Engine {
	opts.setDefaults()
	return &Engine{deps: deps, opts: opts, sessions: map[uint32]*session{}}
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

// register gives a session the process id and secret key the client will
// use to cancel, and remembers it.
func (e *Engine) register(s *session) {
	var b [8]byte
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		rand.Read(b[:])
		pid := binary.BigEndian.Uint32(b[:4]) & 0x7fffffff
		if _, taken := e.sessions[pid]; pid != 0 && !taken {
			s.pid, s.key = pid, binary.BigEndian.Uint32(b[4:])
			e.sessions[pid] = s
			return
		}
	}
}

func (e *Engine) unregister(s *session) {
	e.mu.Lock()
	delete(e.sessions, s.pid)
	e.mu.Unlock()
}

func (e *Engine) lookup(pid uint32) *session {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sessions[pid]
}

func (e *Engine) closeAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.sessions {
		s.shutdown()
	}
}
