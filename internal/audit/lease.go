package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// A node's chain has one writer. The writer holds a lease in the store,
// renewed every LeaseRenew; a gateway starting with a node name whose lease
// is still being renewed by another process refuses to start instead of
// forking the chain. A lease left by a process that died is taken over
// once it is LeaseTTL old.
const (
	LeaseTTL   = 6 * time.Second
	LeaseRenew = 2 * time.Second
)

func leaseKey(node string) string { return "audit.lease." + node }

type lease struct {
	owner string
	at    time.Time
}

func readLease(ctx context.Context, st store.Store, node string) (lease, error) {
	v, err := st.GetMeta(ctx, leaseKey(node))
	if errors.Is(err, store.ErrNotFound) {
		return lease{}, nil
	}
	if err != nil {
		return lease{}, err
	}
	owner, at, _ := strings.Cut(v, " ")
	n, _ := strconv.ParseInt(at, 10, 64)
	return lease{owner: owner, at: time.Unix(0, n)}, nil
}

func newOwner() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// acquireLease takes the node's lease, waiting out one left by a process
// that stopped renewing it.
func (l *Log) acquireLease(ctx context.Context) error {
	st, node := l.opts.Store, l.opts.Node
	first, err := readLease(ctx, st, node)
	if err != nil {
		return fmt.Errorf("audit lease: %w", err)
	}
	if first.owner != "" && first.owner != l.owner && time.Since(first.at) < LeaseTTL {
		// Someone renewed it lately: wait to see whether they still do.
		deadline := first.at.Add(LeaseTTL)
		for time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(250 * time.Millisecond):
			}
			cur, err := readLease(ctx, st, node)
			if err != nil {
				return fmt.Errorf("audit lease: %w", err)
			}
			if cur.owner != first.owner || cur.at.After(first.at) {
				return fmt.Errorf("the audit chain of node %q is being written by another gateway (it renewed its lease %s ago): give every gateway its own --node",
					node, time.Since(cur.at).Round(time.Millisecond))
			}
		}
	}
	return l.renewLease(ctx)
}

func (l *Log) renewLease(ctx context.Context) error {
	l.leaseAt = time.Now()
	return l.opts.Store.SetMeta(ctx, leaseKey(l.opts.Node), l.owner+" "+strconv.FormatInt(l.leaseAt.UnixNano(), 10))
}

// keepLease renews the lease when due, and warns when another process has
// taken it over (two gateways sharing a node name).
func (l *Log) keepLease(ctx context.Context) {
	if time.Since(l.leaseAt) < LeaseRenew {
		return
	}
	cur, err := readLease(ctx, l.opts.Store, l.opts.Node)
	if err == nil && cur.owner != "" && cur.owner != l.owner {
		l.log.Error("another gateway took over this node's audit chain: give every gateway its own --node", "node", l.opts.Node)
	}
	if err := l.renewLease(ctx); err != nil {
		l.log.Error("audit lease renewal failed", "err", err)
	}
}

// releaseLease lets the next gateway with this node name start at once.
func (l *Log) releaseLease(ctx context.Context) {
	if err := l.opts.Store.SetMeta(ctx, leaseKey(l.opts.Node), l.owner+" 0"); err != nil {
		l.log.Error("audit lease release failed", "err", err)
	}
}
