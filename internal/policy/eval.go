package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Decision is the outcome of evaluating the rules for one command.
type Decision struct {
	Action resource.RuleAction
	// Rule is "policy/rule" of the deciding rule, "" when the connection's
	// default decided.
	Rule    string
	Message string
	// Review is the deciding review rule's approval settings; nil for the
	// defaults (and for other actions).
	Review *resource.ReviewSpec
}

// Set is every compiled policy; it is immutable and safe for concurrent
// use. A Set is replaced as a whole when policies change.
type Set struct {
	policies []*Compiled // sorted by name
	// Generation changes whenever the set is replaced.
	Generation uint64

	mu    sync.Mutex
	rules map[string]connRules // per connection name
}

type connRules struct {
	labels map[string]string
	rules  []*Rule
}

// NewSet builds a set; policies are ordered by name.
func NewSet(gen uint64, policies []*Compiled) *Set {
	ps := slices.Clone(policies)
	slices.SortFunc(ps, func(a, b *Compiled) int { return strings.Compare(a.Policy.Name, b.Policy.Name) })
	return &Set{policies: ps, Generation: gen, rules: map[string]connRules{}}
}

// Policies returns the compiled policies in order.
func (s *Set) Policies() []*Compiled { return s.policies }

// For returns the rules that apply to connection c, in precedence order.
func (s *Set) For(c resource.Connection) []*Rule {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cr, ok := s.rules[c.Name]; ok && mapsEqual(cr.labels, c.Labels) {
		return cr.rules
	}
	var rules []*Rule
	for _, p := range s.policies {
		if p.Policy.Connections.Selects(c) {
			rules = append(rules, p.Rules...)
		}
	}
	if len(s.rules) > 10_000 {
		clear(s.rules)
	}
	s.rules[c.Name] = connRules{labels: c.Labels, rules: rules}
	return rules
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Cacheable reports whether the outcome of rules for one session depends
// only on the command's type and classification, so a session may keep
// decisions per classification.
func Cacheable(rules []*Rule) bool {
	for _, r := range rules {
		if r.Volatile {
			return false
		}
	}
	return true
}

// Evaluate applies rules to in. def is the connection's default action.
func Evaluate(rules []*Rule, in *Input, def resource.RuleAction) Decision {
	if len(rules) == 0 {
		return defaultDecision(in, def)
	}
	act := newActivation(in)
	var review, allow *Rule
	var reviewErr string
	for _, r := range rules {
		if r.Action == resource.ActionMask {
			continue // see Masks
		}
		matched, err := r.eval(&act)
		if err != nil {
			if r.Action == resource.ActionAllow {
				continue
			}
			// Fail closed: a block or review rule that cannot be
			// evaluated counts as matching.
			msg := fmt.Sprintf("rule %s could not be evaluated: %v", r.Name, err)
			if r.Action == resource.ActionBlock {
				return Decision{Action: resource.ActionBlock, Rule: r.Name, Message: msg}
			}
			if review == nil {
				review, reviewErr = r, msg
			}
			continue
		}
		if !matched {
			continue
		}
		switch r.Action {
		case resource.ActionBlock:
			return Decision{Action: resource.ActionBlock, Rule: r.Name, Message: r.message()}
		case resource.ActionReview:
			if review == nil {
				review = r
			}
		case resource.ActionAllow:
			if allow == nil {
				allow = r
			}
		}
	}
	switch {
	case review != nil:
		msg := review.message()
		if reviewErr != "" {
			msg = reviewErr
		}
		return Decision{Action: resource.ActionReview, Rule: review.Name, Message: msg, Review: review.Review}
	case allow != nil:
		return Decision{Action: resource.ActionAllow, Rule: allow.Name}
	}
	return defaultDecision(in, def)
}

// Masks returns the mask rules whose conditions hold for the input, in
// order. A condition that cannot be evaluated counts as holding: when in
// doubt, mask.
func Masks(rules []*Rule, in *Input) []*Rule {
	var out []*Rule
	var act activation
	ready := false
	for _, r := range rules {
		if r.Action != resource.ActionMask {
			continue
		}
		if !ready {
			act, ready = newActivation(in), true
		}
		if matched, err := r.eval(&act); matched || err != nil {
			out = append(out, r)
		}
	}
	return out
}

func defaultDecision(in *Input, def resource.RuleAction) Decision {
	d := Decision{Action: def}
	if def != resource.ActionAllow {
		d.Message = "no rule allows this on connection " + in.Connection.Name + " (its defaultAction is " + string(def) + ")"
	}
	return d
}

func (r *Rule) message() string {
	if r.Message != "" {
		return r.Message
	}
	return "matched rule " + r.Name
}

func (r *Rule) eval(act *activation) (bool, error) {
	v, _, err := r.program.Eval(act)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, fmt.Errorf("condition returned %v, not a bool", v.Type())
	}
	return bool(b), nil
}

// activation resolves the four variables without building a map. Each is
// wrapped as a CEL value once per evaluation, not once per rule.
type activation struct {
	identity, connection, command, time ref.Val
}

func newActivation(in *Input) activation {
	a := env.CELTypeAdapter()
	return activation{
		identity:   a.NativeToValue(&in.Identity),
		connection: a.NativeToValue(&in.Connection),
		command:    a.NativeToValue(&in.Command),
		time:       types.Timestamp{Time: in.Time},
	}
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "identity":
		return a.identity, true
	case "connection":
		return a.connection, true
	case "command":
		return a.command, true
	case "time":
		return a.time, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// Now is the clock conditions see; tests replace it.
var Now = func() time.Time { return time.Now().UTC() }

var loads atomic.Uint64

// Load compiles every stored policy into a new Set. A stored policy that no
// longer compiles is an error naming it: the caller keeps its previous set
// rather than enforcing less than was applied.
func Load(ctx context.Context, st store.Store) (*Set, error) {
	ps, err := st.ListPolicies(ctx)
	if err != nil {
		return nil, fmt.Errorf("load policies: %w", err)
	}
	compiled := make([]*Compiled, 0, len(ps))
	for _, p := range ps {
		c, err := Compile(p)
		if err != nil {
			return nil, fmt.Errorf("load policies: %w", err)
		}
		compiled = append(compiled, c)
	}
	return NewSet(loads.Add(1), compiled), nil
}
