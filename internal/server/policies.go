package server

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// PolicyPollInterval is how often a gateway checks the store for policy
// changes made through another node.
const PolicyPollInterval = 2 * time.Second

// policyLoader keeps the gate's policy set in step with the store.
type policyLoader struct {
	g    *Gateway
	mu   sync.Mutex
	seen string // the store's policy generation last loaded
}

// reload loads every policy and hands the set to the gate. On error the
// gate keeps its previous set.
func (p *policyLoader) reload(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	gen, err := p.g.Store.GetMeta(ctx, store.PolicyGenerationKey)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	set, err := policy.Load(ctx, p.g.Store)
	if err != nil {
		return err
	}
	p.g.Gate.SetPolicies(set)
	p.seen = gen
	p.g.cfg.Log.Info("policies loaded", "policies", len(set.Policies()))
	return nil
}

// poll reloads when the store's policy generation changes, until ctx ends.
func (p *policyLoader) poll(ctx context.Context) {
	t := time.NewTicker(PolicyPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		gen, err := p.g.Store.GetMeta(ctx, store.PolicyGenerationKey)
		if err != nil {
			continue
		}
		p.mu.Lock()
		changed := gen != p.seen
		p.mu.Unlock()
		if changed {
			if err := p.reload(ctx); err != nil && ctx.Err() == nil {
				p.g.cfg.Log.Error("reload policies; keeping the previous set", "err", err)
			}
		}
	}
}
