// Package proto defines what every protocol engine shares: the Engine
// interface the server starts, and the dependencies it hands each engine.
// Engines live in subpackages (proto/postgres, …) and never import each
// other; the server wires them by name in one place.
package proto

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"

	"github.com/gatehouse-dev/gatehouse/internal/gate"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Engine serves one protocol on a listener.
type Engine interface {
	// Name is the protocol's name, as in --<name>-addr.
	Name() string
	// Serve accepts connections on l until ctx ends or l is closed, then
	// returns after live sessions have been told and closed.
	Serve(ctx context.Context, l net.Listener) error
}

// Deps is what the server gives every engine.
type Deps struct {
	Store store.Store
	Auth  *identity.Authenticator
	Key   *secret.MasterKey
	Gate  *gate.Gate
	// TLS is the gateway's server TLS configuration (its certificate).
	TLS *tls.Config
	Log *slog.Logger
}
